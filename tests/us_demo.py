"""The US demo (config/demo_us.toml) as a test runs it: the same file, with its own Redis, key
prefix and dashboard port, its positions and history files read from config/ (absolute paths),
and without its scripted fall of SPX (the tests read the opening book's figures).

Used by the US demo's browser test (tests/browser/test_us_demo.py) and the screenshots
(``scripts/screenshots --us``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEMO_US", "write_us_demo"]

ROOT = Path(__file__).resolve().parents[1]
DEMO_US = ROOT / "config" / "demo_us.toml"


def write_us_demo(folder: Path, *, redis_url: str, prefix: str, http_port: int) -> Path:
    """Write config/demo_us.toml into ``folder`` as ``riskd.toml``, publishing to
    ``redis_url`` under ``prefix``, its dashboard on 127.0.0.1:``http_port``; returns it."""
    text = DEMO_US.read_text(encoding="utf-8")
    config = ROOT / "config"
    for old, new in (
        ('url = "redis://127.0.0.1:6379/0"', f'url = "{redis_url}"'),
        ("start_local = true", "start_local = false"),
        ('prefix = "risk-us"', f'prefix = "{prefix}"'),
        ('address = "127.0.0.1:9464"', f'address = "127.0.0.1:{http_port}"'),
        ('"demo_us_positions.csv"', f'"{config / "demo_us_positions.csv"}"'),
        ('"demo_us_history.csv"', f'"{config / "demo_us_history.csv"}"'),
        # no scripted fall: the figures a test reads are those of the opening book
        (
            "jumps = [{ at_s = 30, log_return = -0.02 }, { at_s = 60, log_return = 0.02 }]",
            "jumps = []",
        ),
    ):
        if old not in text:
            raise ValueError(f"config/demo_us.toml no longer holds {old!r}")
        text = text.replace(old, new)
    path = folder / "riskd.toml"
    path.write_text(text, encoding="utf-8")
    return path
