"""A recorded market and a book that fill every panel of the dashboard, as files for a replay.

Two minutes of a BTC and an ETH market (index, perpetual with its order book, and two expiries
of coin-settled options, seven and six strikes, calls and puts, on a skewed smile: every chain
can be fitted; each quote with an open interest peaked at the money, heavier in puts below and
calls above it, and a 24-hour volume of an eighth of it),
fills of options and of two strategies into book ``desk``, perpetual hedges in book ``hedge``, a
year of daily levels for VaR, hedges in the perpetuals (and an option for BTC), equity for margin,
and alert rules of which some are raised at the end and one is raised and cleared on the way.
Seeded: the same files every time, so the replay ends on the same figures.

Used by the browser tests (tests/browser/) and the screenshots (``scripts/screenshots``).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from engine.greeks import inverse

__all__ = ["T0_MS", "write_book"]

T0_MS: Final = 1_732_435_200_000  # 2024-11-24T08:00:00Z, a Sunday
DURATION_S: Final = 120
_DAY_MS: Final = 86_400_000
_EXPIRIES: Final = {
    "27DEC24": dt.datetime(2024, 12, 27, 8, tzinfo=dt.UTC),
    "28MAR25": dt.datetime(2025, 3, 28, 8, tzinfo=dt.UTC),
}


@dataclass(frozen=True, slots=True)
class _Underlying:
    name: str
    index: str
    spot: float
    strikes: tuple[float, ...]
    atm: float
    skew: float
    basis: float  # annual carry of the forward over the index
    tick: float  # the perpetual's order book: USD between levels


_UNDERLYINGS: Final = (
    _Underlying(
        "BTC",
        "btc_usd",
        97_500.0,
        (80e3, 90e3, 95e3, 100e3, 105e3, 110e3, 120e3),
        0.55,
        -0.12,
        0.09,
        0.5,
    ),
    _Underlying(
        "ETH",
        "eth_usd",
        3_350.0,
        (2800.0, 3000.0, 3200.0, 3400.0, 3600.0, 3800.0),
        0.66,
        -0.08,
        0.07,
        0.05,
    ),
)


def _depth(instrument: str, mid: float, tick: float, ts: int) -> dict[str, object]:
    """The perpetual's order book around ``mid``: ten levels a side, a tick apart, deeper
    further out (amounts in USD, as Deribit counts its perpetuals)."""
    half = tick * 2
    levels = [(k * tick, 50_000.0 * (k + 1)) for k in range(10)]
    return {
        "type": "depth",
        "instrument": instrument,
        "bids": [[round(mid - half - d, 2), amount] for d, amount in levels],
        "asks": [[round(mid + half + d, 2), amount] for d, amount in levels],
        "ts": ts,
    }


def _vol(u: _Underlying, k: float, T: float) -> float:
    """The smile: ATM vol, a skew and a smile in k = ln(K/F), flatter with time."""
    return u.atm + (u.skew * k + 0.35 * k * k) / math.sqrt(max(T, 0.05) / 0.1)


def _market(seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)  # noqa: S311 - a seeded simulation
    lines: list[dict[str, object]] = []
    spot = {u.name: u.spot for u in _UNDERLYINGS}
    for second in range(DURATION_S + 1):
        ts = T0_MS + second * 1000
        for u in _UNDERLYINGS:
            spot[u.name] *= math.exp(rng.gauss(0.0, 0.0006))
            S = round(spot[u.name], 2)
            lines.append({"type": "tick", "instrument": u.index, "price": S, "ts": ts})
            lines.append(
                {
                    "type": "tick",
                    "instrument": f"{u.name}-PERPETUAL",
                    "price": round(S * 1.0003, 2),
                    "ts": ts + 10,
                }
            )
            if second % 5:
                continue
            lines.append(_depth(f"{u.name}-PERPETUAL", round(S * 1.0003, 2), u.tick, ts + 20))
            for label, expiry in _EXPIRIES.items():
                T = (expiry.timestamp() * 1000 - ts) / (365 * _DAY_MS)
                F = round(S * math.exp(u.basis * T), 2)
                for K in u.strikes:
                    k = math.log(K / F)
                    sigma = round(_vol(u, k, T), 4)
                    for cp in ("C", "P"):
                        mark = float(inverse(cp == "C", F, K, T, 0.0, sigma).price_coin)
                        wing = 2.0 if (k < 0.0) != (cp == "C") else 1.0
                        oi = round(800.0 * wing * math.exp(-k * k / 0.02) + second / 10.0, 1)
                        lines.append({
                            "type": "quote", "instrument": f"{u.name}-{label}-{K:.0f}-{cp}",
                            "bid": round(mark * 0.98, 4), "ask": round(mark * 1.02, 4),
                            "mark": round(mark, 8), "iv": sigma, "underlying_price": F,
                            "index_price": S, "open_interest": oi, "volume": round(oi / 8, 1),
                            "ts": ts + 50,
                        })  # fmt: skip
    return lines


_FILLS: Final = (  # (second, instrument, quantity, price in coin)
    (8, "BTC-27DEC24-100000-C", -25.0, 0.035),
    (16, "BTC-27DEC24-90000-P", 12.0, 0.022),
    (24, "ETH-27DEC24-3400-C", -150.0, 0.045),
    (32, "vertical:BTC-28MAR25-100000-C/120000", 15.0, 0.04),
    (40, "straddle:ETH-28MAR25-3400-C/P", -60.0, 0.21),
    (70, "BTC-27DEC24-100000-C", 20.0, 0.036),  # most of the short calls bought back
)


def _fills() -> list[dict[str, object]]:
    return [
        {"type": "fill", "book": "desk", "instrument": name, "quantity": qty, "price": price,
         "ts": T0_MS + s * 1000 + 60, "id": f"desk-{i}"}
        for i, (s, name, qty, price) in enumerate(_FILLS)
    ]  # fmt: skip


def _history(seed: int) -> str:
    """A year of daily levels of both underlyings before the file's day (seeded walks ending
    at their start)."""
    rng = random.Random(seed)  # noqa: S311 - a seeded simulation
    rows = ["date,underlying,price,vol"]
    day0 = dt.date(2024, 11, 23)
    for u in _UNDERLYINGS:
        price, levels = u.spot, []
        for n in range(260):
            levels.append((day0 - dt.timedelta(days=n), price))
            price /= math.exp(rng.gauss(0.0, 0.03))
        rows += [f"{d.isoformat()},{u.name},{p:.2f},{u.atm:.4f}" for d, p in reversed(levels)]
    return "\n".join(rows) + "\n"


_CONFIG: Final = """\
# tests/dashboard_book.py: a replay that fills every panel of the dashboard
[redis]
url = "{redis_url}"
prefix = "{prefix}"

[portfolio]
positions = "positions.csv"
stale_after_s = 30

[risk]
history = "history.csv"
record_at_utc = "23:59"
mc_scenarios = 2000
skew_interval_s = 1.0
equity_usd = {{ desk = 4000000.0, hedge = 1500000.0 }}
hedge_future = {{ BTC = "BTC-PERPETUAL", ETH = "ETH-PERPETUAL" }}
hedge_options = {{ BTC = ["BTC-28MAR25-100000-C"] }}

[risk.liquidity]
interval_s = 1.0

[risk.cross_hedge]
interval_s = 1.0
hedge = {{ "*" = "BTC-PERPETUAL" }}
benchmark = "btc_usd"

[risk.cpt]
enabled = true
interval_s = 1.0
[risk.attribution]
interval_s = 1.0
capital_interval_s = 1.0
budget_usd = {{ desk = 200000.0 }}
[risk.positioning]
interval_s = 1.0

[http]
address = "127.0.0.1:{http_port}"
{http_extra}
[log]
level = "INFO"

[[feeds]]
kind = "replay"
name = "replay"
path = "market.jsonl"
format = "jsonl"
speed = {speed}

[[alerts]]
name = "desk_btc_delta"
metric = "delta_adj"
scope = "underlying"
book = "desk"
underlying = "BTC"
below = -10.0
hysteresis = 1.0
severity = "warning"

[[alerts]]
name = "desk_vega"
metric = "vega"
scope = "book"
book = "desk"
below = -20000.0
hysteresis = 1000.0
severity = "critical"

[[alerts]]
name = "desk_margin"
metric = "margin_utilisation"
scope = "book"
book = "desk"
above = 0.05
hysteresis = 0.005
severity = "warning"

[[alerts]]
name = "hedge_var"
metric = "var"
scope = "book"
book = "hedge"
above = 1000.0
severity = "info"
"""


def write_book(
    folder: Path,
    *,
    redis_url: str,
    prefix: str,
    http_port: int,
    speed: float = 20.0,
    http_extra: str = "",
    seed: int = 20261206,
) -> Path:
    """Write the replay's files into ``folder``; returns its config file (``riskd.toml``).

    Args:
        redis_url: the Redis to publish to. prefix: its key prefix.
        http_port: the dashboard's port on 127.0.0.1 (0: any free one).
        speed: the replay's speed (20: its two minutes in six seconds, so VaR has a history).
        http_extra: more ``[http]`` lines (a token, limits).
    """
    folder.mkdir(parents=True, exist_ok=True)
    lines = sorted([*_market(seed), *_fills()], key=lambda m: int(str(m["ts"])))
    text = "".join(json.dumps(m) + "\n" for m in lines)
    (folder / "market.jsonl").write_text(text, encoding="utf-8")
    (folder / "positions.csv").write_text(
        "book,instrument,quantity,avg_price\n"
        "hedge,BTC-PERPETUAL,-300000,96000\nhedge,ETH-PERPETUAL,200000,3300\n",
        encoding="utf-8",
    )
    (folder / "history.csv").write_text(_history(seed), encoding="utf-8")
    config = folder / "riskd.toml"
    config.write_text(
        _CONFIG.format(
            redis_url=redis_url,
            prefix=prefix,
            http_port=http_port,
            http_extra=http_extra,
            speed=speed,
        ),
        encoding="utf-8",
    )
    return config
