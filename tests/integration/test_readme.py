"""The README's Python example runs and says what the code does."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

README = Path(__file__).parents[2] / "README.md"


def test_readme_python_example_runs_and_round_trips() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1
    namespace: dict[str, object] = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)  # noqa: S102  # our own README
    g = namespace["g"]
    c = namespace["c"]
    implied_vol = namespace["implied_vol"]
    assert callable(implied_vol)
    iv = implied_vol(g.price, True, 100.0, [90.0, 100.0, 110.0], 0.5, 0.04, q=0.01)  # type: ignore[attr-defined]  # names from the README
    np.testing.assert_allclose(iv, 0.25, rtol=1e-13)
    iv_coin = implied_vol(c.price_coin, True, 98500.0, 100000.0, 33 / 365, 0.0, model="inverse")  # type: ignore[attr-defined]  # names from the README
    np.testing.assert_allclose(iv_coin, 0.58, rtol=1e-13)


def test_readme_names_the_two_commands_ci_runs() -> None:
    text = README.read_text()
    assert "scripts/riskd          # the main job" in text
    assert "scripts/test" in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert "exec scripts/test\n" in ci
