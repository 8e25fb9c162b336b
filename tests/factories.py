"""Builders of valid events and payloads for tests (nautilus ``test_kit`` style).

Every builder has sensible defaults, so a test spells out only what it is about:
``quote("BTC-27DEC24-60000-C", iv=0.55, underlying_price=63_000.0)``. Timestamps default to
:data:`T0_NS`; ``ts_ns`` sets both ``ts_event`` and ``ts_recv``, and either can be overridden.
``payload(VarPayload, book="main", var=2e6)`` builds any payload of :mod:`engine.outputs`.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import msgspec

from engine.events import Fill, Quote, Tick
from engine.outputs import AlertPayload, AlertState

__all__ = [
    "BTC_CALL",
    "BTC_FUTURE",
    "BTC_INDEX",
    "BTC_PERPETUAL",
    "DERIBIT_OPTION_TICKER",
    "T0_NS",
    "alert",
    "fill",
    "payload",
    "quote",
    "tick",
]

T0_NS = 1_719_792_000_000_000_000
"""2024-07-01T00:00:00Z in int UNIX ns: the default event time and valuation time of tests."""

BTC_INDEX = "btc_usd"
BTC_FUTURE = "BTC-27DEC24"
BTC_PERPETUAL = "BTC-PERPETUAL"
BTC_CALL = "BTC-27DEC24-60000-C"

DERIBIT_OPTION_TICKER = {
    "instrument_name": BTC_CALL,
    "timestamp": 1_700_000_000_000,
    "mark_price": 0.05,
    "best_bid_price": 0.049,
    "best_ask_price": 0.051,
    "mark_iv": 55.0,
    "underlying_price": 40_000.0,
    "index_price": 39_900.0,
}
"""The ``data`` of a Deribit ticker notification of :data:`BTC_CALL` (prices in BTC, IV in %)."""


def tick(
    instrument: str = BTC_INDEX,
    price: float = 60_000.0,
    *,
    ts_ns: int = T0_NS,
    ts_event: int | None = None,
    ts_recv: int | None = None,
) -> Tick:
    """A tick of an index, spot, future or perpetual (default: the BTC index at 60 000 USD)."""
    return Tick(
        instrument=instrument,
        price=price,
        ts_event=ts_ns if ts_event is None else ts_event,
        ts_recv=ts_ns if ts_recv is None else ts_recv,
    )


def quote(
    instrument: str = BTC_CALL,
    *,
    bid: float | None = None,
    ask: float | None = None,
    mark: float | None = 0.08,
    iv: float | None = None,
    underlying_price: float | None = None,
    index_price: float | None = None,
    ts_ns: int = T0_NS,
    ts_event: int | None = None,
    ts_recv: int | None = None,
) -> Quote:
    """An option quote (default: a mark of 0.08 coin on the BTC 27DEC24 60 000 call).

    Pass ``mark=None`` with ``bid`` and ``ask`` for a quote without a mark.
    """
    if bid is None and ask is None and mark is None:
        raise ValueError("a quote needs at least one of bid, ask, mark")
    return Quote(
        instrument=instrument,
        bid=bid,
        ask=ask,
        mark=mark,
        iv=iv,
        underlying_price=underlying_price,
        index_price=index_price,
        ts_event=ts_ns if ts_event is None else ts_event,
        ts_recv=ts_ns if ts_recv is None else ts_recv,
    )


def fill(
    instrument: str = BTC_CALL,
    quantity: float = 1.0,
    price: float | None = 0.08,
    *,
    book: str = "main",
    fill_id: str | None = None,
    ts_ns: int = T0_NS,
    ts_event: int | None = None,
    ts_recv: int | None = None,
) -> Fill:
    """A fill of ``quantity`` at ``price`` in ``book`` (default: buy 1 BTC call at 0.08 coin)."""
    return Fill(
        book=book,
        instrument=instrument,
        quantity=quantity,
        price=price,
        fill_id=fill_id,
        ts_event=ts_ns if ts_event is None else ts_event,
        ts_recv=ts_ns if ts_recv is None else ts_recv,
    )


S = TypeVar("S", bound=msgspec.Struct)


def payload(cls: type[S], /, **fields: Any) -> S:
    """A ``cls`` (a payload Struct of :mod:`engine.outputs`, or a part of one) with ``fields``,
    every other field a neutral value: NaN for a float (an alert rule ignores it), None where
    null is allowed, 0, "", empty lists and dicts, the first value of a Literal; ``ts_ns``
    defaults to :data:`T0_NS`."""
    if "ts_ns" in cls.__struct_fields__:
        fields.setdefault("ts_ns", T0_NS)
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    for f in info.fields:
        if f.required and f.name not in fields:
            fields[f.name] = _neutral(f.type)
    return cls(**fields)


def _neutral(t: msgspec.inspect.Type) -> Any:
    mi = msgspec.inspect
    if isinstance(t, mi.Metadata):
        return _neutral(t.type)
    if isinstance(t, mi.UnionType):
        return None if t.includes_none else _neutral(t.types[0])
    if isinstance(t, mi.FloatType):
        return math.nan
    if isinstance(t, mi.IntType):
        return 0
    if isinstance(t, mi.StrType):
        return ""
    if isinstance(t, mi.BoolType):
        return False
    if isinstance(t, mi.LiteralType):
        return t.values[0]
    if isinstance(t, mi.ListType):
        return []
    if isinstance(t, mi.DictType):
        return {}
    if isinstance(t, mi.StructType):
        return payload(t.cls)
    raise TypeError(f"no neutral value for {t}")


def alert(alert_id: str = "a", state: AlertState = "raised", **fields: Any) -> AlertPayload:
    """An :class:`engine.outputs.AlertPayload` (other fields: see :func:`payload`)."""
    return payload(AlertPayload, id=alert_id, alert=alert_id.split(":")[0], state=state, **fields)
