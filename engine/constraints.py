"""Constraints of configuration and wire fields, as ``typing.Annotated`` aliases that msgspec
checks when it decodes or converts (``port: Port = 1883``).

The generic ones live here, once, for the core, the feeds and the runtime; a constraint that
means something to one module only (a Redis key prefix, a confidence level) stays beside its
struct.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

__all__ = [
    "NonEmptyStr",
    "NonNegativeFloat",
    "NonNegativeInt",
    "Port",
    "PositiveFloat",
    "PositiveInt",
    "Share",
    "TimestampMs",
    "TimestampNs",
]

_INT64_MAX: Final = 2**63 - 1  # timestamps end in the engine's int64 ns columns
_NS_PER_MS: Final = 1_000_000

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
"""An int > 0 (counts, sizes, intervals in ms)."""
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
"""An int >= 0."""
PositiveFloat = Annotated[float, msgspec.Meta(gt=0.0)]
"""A float > 0 (durations in seconds, prices, rates of a schedule)."""
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0.0)]
"""A float >= 0."""
Share = Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]
"""A share of a whole, in (0, 1]."""
NonEmptyStr = Annotated[str, msgspec.Meta(min_length=1)]
"""A string of at least one character (names, file paths, environment variable names)."""
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
"""A TCP port, 1 to 65535."""
TimestampMs = Annotated[int, msgspec.Meta(ge=0, le=_INT64_MAX // _NS_PER_MS)]
"""An int UNIX time in milliseconds that still fits int64 nanoseconds."""
TimestampNs = Annotated[int, msgspec.Meta(ge=0, le=_INT64_MAX)]
"""An int UNIX time in nanoseconds (int64)."""
