"""Under ``HYPOTHESIS_PROFILE=long`` a fuzz test runs for many minutes: pytest-timeout's limit
(``timeout`` in pyproject.toml) is lifted for the tests of this folder, only then."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.strategies import FUZZ_PROFILE

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if FUZZ_PROFILE != "long":
        return
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.timeout(0))
