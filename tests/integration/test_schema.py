"""What the daemon writes to Redis against the checked-in JSON Schema of the payloads
(docs/schema/riskd-payloads.json), validated by ``jsonschema`` (not by msgspec, which
generates the schema and encodes the payloads).

One real daemon on a real redis-server runs until every family has been written: a simulated
market and a book with an option that expires during the run (its settlement: the running
average, then the positions settled), a strategy, hedges, skew fits, alert rules that raise and
clear, a feed that goes quiet (the stale-feed alert) and an alert a predecessor left active (the
``restart`` clear). Every message of every channel, every stream entry, every snapshot field,
the active alerts and the heartbeat must match its family's schema, with no field the schema
does not name.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import redis.asyncio as aioredis

from engine.instruments import parse_deribit_name
from engine.runtime.cli import SCHEMA_FILE
from tests.servers import RedisServer, running_daemon

EXPIRING = "BTC-27DEC30-60000-C"  # held; expires during the run
START_NS = round(dt.datetime(2030, 12, 27, 7, 59, tzinfo=dt.UTC).timestamp()) * 10**9
"""The sim's start, from which its chain's expiries count: 7 days on, 3 Jan 2031."""
CALL, PUT = "BTC-3JAN31-60000-C", "BTC-3JAN31-60000-P"
FAMILIES = (
    "exposure",
    "var",
    "stress",
    "margin",
    "hedge",
    "skew",
    "strategy",
    "settlement",
    "liquidity",
    "slippage",
    "crosshedge",
    "cpt",
    "attribution",
    "capital",
    "positioning",
)


class ShiftedClock:
    """The wall clock moved by ``offset_ns`` (which the test changes: a jump in time)."""

    def __init__(self, now_ns: int) -> None:
        self.offset_ns = now_ns - time.time_ns()

    def now_ns(self) -> int:
        return time.time_ns() + self.offset_ns

    def set(self, now_ns: int) -> None:
        self.offset_ns = now_ns - time.time_ns()


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with no field beyond those it names (a renamed field fails both ways)."""
    out = copy.deepcopy(schema)
    for name, node in out["$defs"].items():
        if "properties" in node and name not in ("EngineStatus", "Heartbeat"):
            node["additionalProperties"] = False
    out["$defs"]["heartbeat"]["unevaluatedProperties"] = False  # its two parts together
    return out


def validator(schema: dict[str, Any], family: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$defs": schema["$defs"], "$ref": f"#/$defs/{family}"})


def _config(tmp_path: Path, url: str, prefix: str) -> Path:
    # a copy: the daemon appends the level it records (at this test's clock, in 2030) to it
    history = tmp_path / "history.csv"
    shutil.copyfile(Path(__file__).resolve().parents[2] / "config" / "demo_history.csv", history)
    (tmp_path / "positions.csv").write_text(
        "book,instrument,quantity,avg_price\n"
        f"main,{EXPIRING},2,0.05\n"
        "main,BTC-PERPETUAL,-10000,60000\n"
        f"main,straddle:{CALL}/P,1,0.1\n"
    )
    path = tmp_path / "riskd.toml"
    path.write_text(
        f"""
[redis]
url = "{url}"
prefix = "{prefix}"
min_interval_ms = 50
heartbeat_interval_s = 0.2
heartbeat_ttl_s = 5.0

[portfolio]
positions = "positions.csv"

[engine]
feed_stale_after_s = 1.5

[risk]
history = "{history}"
mc_scenarios = 200
var_interval_s = 0.5
stress_interval_s = 0.5
margin_interval_s = 0.5
hedge_interval_s = 0.5
skew_interval_s = 0.5
strategy_interval_s = 0.5
equity_usd = {{ main = 1000000.0 }}
equity_coin = {{ main = 10.0 }}
hedge_future = {{ BTC = "BTC-PERPETUAL" }}
hedge_options = {{ BTC = ["{CALL}"] }}

[risk.cross_hedge]
interval_s = 0.5
hedge = {{ "*" = "BTC-PERPETUAL" }}
benchmark = "btc_usd"
min_days = 2

[risk.cpt]
enabled = true
interval_s = 0.5
[risk.attribution]
interval_s = 0.5
capital_interval_s = 0.5
budget_usd = {{ main = 100000.0 }}
[risk.positioning]
interval_s = 0.5

[[feeds]]
kind = "sim"
name = "sim"
seed = 3
rate_hz = 200
book = "main"
opening_fills = 2
start_ns = {START_NS}

[[feeds.underlyings]]
name = "BTC"
spot = 60000.0
vol = 0.6
expiries_days = [7, 30]
strikes_pct = [0.8, 0.9, 1.0, 1.1, 1.2]
open_interest = 100.0

[[feeds]]
kind = "sim"
name = "quiet"     # one event at start, then silence: the stale-feed alert
seed = 4
rate_hz = 0.01
start_ns = {START_NS}

[[feeds.underlyings]]
name = "ETH"
spot = 3000.0
expiries_days = [7]
strikes_pct = [1.0]

[[alerts]]
name = "held"      # raised at once
metric = "n_positions"
scope = "underlying"
above = 0.0

[[alerts]]
name = "expiring"  # raised at once, cleared when the option settles
metric = "n_positions"
scope = "expiry"
expiry = "2030-12-27T08:00:00Z"
above = 0.5

[[alerts]]
name = "im"
metric = "margin_im"
scope = "book"
above = 0.0

[[alerts]]
name = "straddle"
metric = "vega"
scope = "strategy"
above = 0.0

[[alerts]]
name = "atm"
metric = "atm_vol"
scope = "expiry"
above = 0.0

[[alerts]]
name = "gex"       # raised at once: dealers long gamma
metric = "gex_total"
scope = "expiry"
expiry = "all"
above = 0.0
"""
    )
    return path


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class Written:
    """Everything read back from Redis: (family, where, payload) triples."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, Any]] = []

    def __iter__(self) -> Iterator[tuple[str, str, Any]]:
        return iter(self.items)

    def of(self, family: str) -> list[Any]:
        return [p for f, _, p in self.items if f == family]

    async def read(self, r: aioredis.Redis, prefix: str) -> None:
        """Every stream entry, snapshot field, active alert and the heartbeat."""
        self.items = [item for item in self.items if item[1].startswith("channel")]
        for family in (*FAMILIES, "alerts"):
            for _, fields in await r.xrange(f"{prefix}:{family}:stream") or []:
                assert fields is not None
                self._add(family, f"{family}:stream", fields[b"data"])
        for family in FAMILIES:
            name = f"{prefix}:snapshot" if family == "exposure" else f"{prefix}:{family}:snapshot"
            for key, data in (await r.hgetall(name)).items():
                self._add(family, f"{name} {_text(key)}", data)
        for key, data in (await r.hgetall(f"{prefix}:alerts:active")).items():
            self._add("alerts", f"alerts:active {_text(key)}", data)
        beat = await r.get(f"{prefix}:heartbeat")
        if beat is not None:
            self._add("heartbeat", "heartbeat", beat)

    def _add(self, family: str, where: str, data: bytes | str) -> None:
        self.items.append(("alert" if family == "alerts" else family, where, orjson.loads(data)))

    def complete(self) -> bool:
        """Whether every family and every kind of payload within one has been read."""
        alerts = self.of("alert")
        settled = [p for p in self.of("settlement") if p["final"] and p["positions"]]
        return (
            all(self.of(f) for f in (*FAMILIES, "heartbeat"))
            and {p["scope"] for p in self.of("exposure")} == {"book", "underlying"}
            and {"expiry" in p for p in self.of("skew")} == {True, False}
            and any(p["svi"] is not None for p in self.of("skew") if "expiry" in p)
            and any(p["status"] == "ok" and p["payoff"] for p in self.of("strategy"))
            and any(p["option_hedge"] is not None for p in self.of("hedge"))
            and any(p["status"] == "ok" for p in self.of("margin"))
            and any(p["var"] is not None for p in self.of("var"))
            and any(p["lvar"] is not None for p in self.of("liquidity"))
            and any(p["hedge"] is not None for p in self.of("crosshedge"))
            and any(p["value"] is not None for p in self.of("cpt"))
            and any(p["methods"][0]["status"] == "ok" for p in self.of("attribution"))
            and any(p["capital_utilisation"] is not None for p in self.of("capital"))
            and any(p["zero_gamma"] is not None for p in self.of("positioning"))
            and bool(settled)
            and any(p.get("reason") == "restart" for p in alerts)
            and any(p["scope"] == "feed" for p in alerts)
            and {p["alert"] for p in alerts} >= {"held", "expiring", "im", "straddle", "atm", "gex"}
            and any(p["alert"] == "expiring" and p["state"] == "cleared" for p in alerts)
        )


async def test_everything_the_daemon_writes_matches_the_schema(
    tmp_path: Path, redis_server: RedisServer, unique: str
) -> None:
    path = _config(tmp_path, redis_server.url, unique)
    option = parse_deribit_name(EXPIRING)
    assert option is not None
    assert option.expiry_ns is not None
    expiry = option.expiry_ns
    clock = ShiftedClock(expiry - 20 * 60 * 10**9)  # in the settlement window
    r = aioredis.Redis.from_url(redis_server.url)
    # a predecessor (of schema version 2) left an alert raised
    left = {"v": 2, "ts": 1, "ts_ns": 10**6, "id": "old:main", "alert": "old", "state": "raised"}
    left |= {"severity": "info", "metric": "vega", "scope": "book", "book": "main"}
    left |= {"underlying": None, "expiry": None, "strategy": None, "value": 1.0}
    left |= {"threshold": 0.0, "direction": "above", "unit": "USD per vol point"}
    await r.hset(f"{unique}:alerts:active", "old:main", orjson.dumps(left))
    written = Written()
    pubsub = r.pubsub()
    await pubsub.psubscribe(f"{unique}:*")

    async def listen() -> None:
        async for msg in pubsub.listen():
            if msg["type"] == "pmessage":
                family = _text(msg["channel"]).removeprefix(f"{unique}:")
                written.items.append(
                    (
                        "alert" if family == "alerts" else family,
                        "channel",
                        orjson.loads(msg["data"]),
                    )
                )

    listener = asyncio.create_task(listen())
    try:
        async with running_daemon(path, clock):
            async with asyncio.timeout(60):
                # polls what reached Redis: no event marks it
                while not (written.of("settlement") and written.of("strategy")):  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
                clock.set(expiry + 10**9)  # the option expires: it settles
                while True:
                    await asyncio.sleep(0.2)
                    await written.read(r, unique)
                    if written.complete():
                        break
        await written.read(r, unique)  # and the final snapshot
    finally:
        listener.cancel()
        await pubsub.aclose()
        await r.aclose()

    schema = strict(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    validators = {f: validator(schema, f) for f in (*FAMILIES, "alert", "heartbeat")}
    checked = 0
    for family, where, payload in written:
        errors = [e.message for e in validators[family].iter_errors(payload)]
        assert not errors, (where, errors[:3], payload)
        checked += 1
    channels = {f for f, where, _ in written if where == "channel"}
    assert channels == {*FAMILIES, "alert"}
    assert checked > 100

    # The check bites: a renamed field, a field the schema does not name, a missing one.
    var = written.of("var")[-1]
    renamed = {("history_day" if k == "history_days" else k): v for k, v in var.items()}
    assert not validators["var"].is_valid(renamed)
    assert not validators["exposure"].is_valid(written.of("exposure")[0] | {"extra": 1})
    beat = {k: v for k, v in written.of("heartbeat")[0].items() if k != "lots"}
    assert not validators["heartbeat"].is_valid(beat)
    assert not validators["heartbeat"].is_valid(written.of("heartbeat")[0] | {"extra": 1})
