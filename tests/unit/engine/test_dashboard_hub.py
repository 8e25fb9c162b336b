"""The dashboard's hub (engine.runtime.dashboard.hub) on its own: what it keeps, what a new
browser's snapshot holds, what each browser is offered (conflated, alerts in order, deletions),
and the VaR history. Sending over a real WebSocket is tests/integration/test_dashboard.py's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import msgspec
import pytest

from engine.outputs import (
    BookExposure,
    RedisState,
    ServerState,
    StressPayload,
    VarPayload,
    dashboard_schema,
)
from engine.runtime.cli import DASHBOARD_SCHEMA_FILE, main
from engine.runtime.dashboard import ALERT_LOG, DashboardHub, TooManyClientsError
from engine.runtime.http import HttpConfig
from tests.factories import T0_NS, alert, payload

_JSON = msgspec.json.Decoder()
STATE = payload(ServerState, now_ns=T0_NS, redis=payload(RedisState))


def hub(**config: Any) -> DashboardHub:
    return DashboardHub(
        msgspec.convert({"update_interval_ms": 0, **config}, HttpConfig),
        "risk",
        lambda: STATE,
        {"exposure": 1.0, "var": 1.0},
    )


def book(name: str, vega: float, ts_ns: int = T0_NS) -> BookExposure:
    return payload(BookExposure, book=name, vega=vega, ts_ns=ts_ns)


def var(name: str, value: float, ts_ns: int) -> VarPayload:
    return payload(
        VarPayload, book=name, var=value, es=value * 1.1, ts_ns=ts_ns, method="historical"
    )


def decode(data: bytes) -> dict[str, Any]:
    msg = _JSON.decode(data)
    assert isinstance(msg, dict)
    return msg


def entries(msg: dict[str, Any]) -> dict[tuple[str, str], Any]:
    return {(e["key"], e["field"]): e["payload"] for e in msg["entries"]}


@pytest.fixture
async def running() -> AsyncIterator[DashboardHub]:
    """A hub whose task runs (no spacing between passes)."""
    h = hub()
    task = asyncio.create_task(h.run())
    try:
        yield h
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_a_snapshot_holds_the_latest_payload_of_each_hash_field_the_sink_writes() -> None:
    h = hub()
    h.publish("demo", book("demo", 1.0))
    h.publish("demo", book("demo", 2.0))  # replaces the first
    h.publish("demo:BTC", payload(StressPayload, book="demo"))  # another family, same field name
    h.publish("demo", payload(StressPayload, book="demo", stress_loss=5.0))
    _, snapshot = h.connect()
    msg = decode(snapshot)
    assert msg["type"] == "snapshot"
    assert msg["prefix"] == "risk"
    got = entries(msg)
    assert set(got) == {
        ("risk:snapshot", "demo"),
        ("risk:stress:snapshot", "demo:BTC"),
        ("risk:stress:snapshot", "demo"),
    }
    assert got[("risk:snapshot", "demo")]["vega"] == 2.0
    assert got[("risk:stress:snapshot", "demo")]["stress_loss"] == 5.0
    assert msg["periods_s"] == {"exposure": 1.0, "var": 1.0}
    assert msg["health"]["now_ns"] == STATE.now_ns


def test_an_alert_is_active_until_cleared_and_every_transition_is_logged() -> None:
    h = hub()
    h.alert(alert("a:1", "raised", value=10.0))
    h.alert(alert("b:1", "raised", value=1.0))
    h.alert(alert("a:1", "cleared", value=2.0))
    _, snapshot = h.connect()
    msg = decode(snapshot)
    assert set(entries(msg)) == {("risk:alerts:active", "b:1")}
    assert [(a["id"], a["state"]) for a in msg["alerts"]] == [
        ("a:1", "raised"),
        ("b:1", "raised"),
        ("a:1", "cleared"),
    ]


def test_the_alert_log_keeps_the_last_transitions() -> None:
    h = hub()
    for i in range(ALERT_LOG + 5):
        h.alert(alert(f"a:{i}", "raised"))
        h.step()  # as the hub's task would between them
    msg = decode(h.connect()[1])
    assert len(msg["alerts"]) == ALERT_LOG
    assert msg["alerts"][0]["id"] == "a:5"


def test_a_browser_is_offered_the_latest_value_of_what_changed() -> None:
    h = hub()
    client, _ = h.connect()
    h.publish("demo", book("demo", 1.0))
    h.step()
    assert client.wake.is_set()
    h.publish("demo", book("demo", 2.0))
    h.publish("hedge", book("hedge", 3.0))
    h.step()  # nothing was sent meanwhile: demo's first value is replaced
    data = client.take()
    assert data is not None
    msg = decode(data)
    assert msg["type"] == "update"
    assert {k: p["vega"] for k, p in entries(msg).items()} == {
        ("risk:snapshot", "demo"): 2.0,
        ("risk:snapshot", "hedge"): 3.0,
    }
    assert client.conflated == 1
    assert client.take() is None  # nothing pending once taken


async def test_the_hubs_task_offers_what_is_recorded_and_a_cleared_alert_as_deleted(
    running: DashboardHub,
) -> None:
    client, _ = running.connect()
    running.alert(alert("a:1", "raised"))
    running.alert(alert("a:1", "cleared"))
    await client.wake.wait()
    data = client.take()
    assert data is not None
    msg = decode(data)
    assert entries(msg) == {("risk:alerts:active", "a:1"): None}
    assert [a["state"] for a in msg["alerts"]] == ["raised", "cleared"]


def test_a_slow_browser_holds_one_value_per_key_and_the_last_alerts() -> None:
    """What waits for a browser that does not read is bounded: the latest entry per key and
    field, and ALERT_LOG transitions (the oldest dropped and counted)."""
    h = hub()
    client, _ = h.connect()
    for i in range(1000):
        h.publish("demo", book("demo", float(i)))
        h.alert(alert(f"a:{i % 3}", "raised" if i % 2 else "cleared", value=float(i)))
        h.step()
    assert len(client.entries) == 1 + 3  # the exposure key, the alerts' fields
    assert len(client.alerts) == ALERT_LOG
    assert client.dropped_alerts == 1000 - ALERT_LOG
    data = client.take()
    assert data is not None
    msg = decode(data)
    got = entries(msg)
    assert got[("risk:snapshot", "demo")]["vega"] == 999.0
    # last transitions: a:0 at 999 (odd: raised), a:1 at 997 (raised), a:2 at 998 (cleared)
    assert got[("risk:alerts:active", "a:0")]["value"] == 999.0
    assert got[("risk:alerts:active", "a:1")]["value"] == 997.0
    assert got[("risk:alerts:active", "a:2")] is None
    assert [a["value"] for a in msg["alerts"]] == [float(i) for i in range(800, 1000)]


def test_what_was_recorded_before_a_browser_connects_is_in_its_snapshot_not_after() -> None:
    h = hub()
    h.publish("demo", book("demo", 1.0))
    client, snapshot = h.connect()  # before the hub's task took it
    assert entries(decode(snapshot))[("risk:snapshot", "demo")]["vega"] == 1.0
    assert client.take() is None


def test_the_var_history_keeps_the_last_var_history_s_one_point_per_period() -> None:
    h = hub(var_history_s=10.0)
    s = 1_000_000_000
    for t in (0, 4, 8, 8, 12, 16):  # 8 twice: a period republished unchanged (a replay's end)
        h.publish("demo", var("demo", float(t), T0_NS + t * s))
        h._drain()
    history = decode(h.connect()[1])["var_history"]["demo"]
    assert history["ts_ns"] == [T0_NS + t * s for t in (8, 12, 16)]
    assert history["var"] == [8.0, 12.0, 16.0]
    assert history["es"] == pytest.approx([8.8, 13.2, 17.6])
    assert history["method"] == "historical"


def test_max_clients_are_served_and_one_more_is_refused() -> None:
    h = hub(max_clients=2)
    first, _ = h.connect()
    h.connect()
    with pytest.raises(TooManyClientsError):
        h.connect()
    h.disconnect(first)
    h.connect()
    assert len(h.clients) == 2


async def test_every_browser_gets_the_daemons_state_once_a_second(running: DashboardHub) -> None:
    client, _ = running.connect()
    async with asyncio.timeout(5):
        while client.health is None:
            await client.wake.wait()
            client.wake.clear()
    data = client.take()
    assert data is not None
    assert decode(data)["health"]["now_ns"] == STATE.now_ns


def test_publishing_records_only() -> None:
    """The engine's path: nothing is encoded or offered until the hub's task runs."""
    h = hub()
    client, _ = h.connect()
    h.publish("demo", book("demo", 1.0))
    h.alert(alert("a:1"))
    assert client.take() is None
    assert not client.wake.is_set()


def test_the_checked_in_schema_is_the_generated_one_and_messages_validate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docs/schema/dashboard-messages.json is what ``riskd schema --dashboard`` prints now;
    a snapshot and an update of the hub validate against it."""
    checked_in = json.loads(DASHBOARD_SCHEMA_FILE.read_text(encoding="utf-8"))
    assert checked_in == dashboard_schema()
    assert main(["schema", "--dashboard"]) == 0
    assert capsys.readouterr().out == DASHBOARD_SCHEMA_FILE.read_text(encoding="utf-8")
    validator = jsonschema.Draft202012Validator(checked_in)
    h = hub()
    h.publish("demo", book("demo", 1.0))
    h.publish("demo", var("demo", 5.0, T0_NS))
    h.alert(alert("a:1"))
    client, snapshot = h.connect()
    h.alert(alert("a:1", "cleared"))
    h.step(health=True)
    update = client.take()
    assert update is not None
    for data in (snapshot, update):
        validator.validate(json.loads(data))


def test_a_new_browser_does_not_take_what_the_others_were_not_offered_yet() -> None:
    """A snapshot takes what was recorded since the hub's last pass: the browsers connected
    before get it as an update."""
    h = hub()
    first, _ = h.connect()
    h.publish("demo", book("demo", 7.0))
    _, snapshot = h.connect()  # before the hub's task took it
    assert entries(decode(snapshot))[("risk:snapshot", "demo")]["vega"] == 7.0
    data = first.take()
    assert data is not None
    assert entries(decode(data))[("risk:snapshot", "demo")]["vega"] == 7.0


def test_the_active_alerts_follow_every_transition_beyond_the_log() -> None:
    """More transitions between two passes than the log keeps: the log has the last ones, the
    active alerts all."""
    h = hub()
    for i in range(ALERT_LOG + 50):
        h.alert(alert(f"a:{i}", "raised"))
    h.alert(alert("a:0", "cleared"))
    msg = decode(h.connect()[1])
    active = {f for k, f in entries(msg) if k == "risk:alerts:active"}
    assert active == {f"a:{i}" for i in range(1, ALERT_LOG + 50)}
    assert len(msg["alerts"]) == ALERT_LOG
    assert msg["alerts"][-1]["state"] == "cleared"


def test_browsers_with_nothing_else_waiting_share_one_encoding() -> None:
    """The usual case, every browser keeping up: a pass is encoded once for all of them; a
    browser with something else waiting gets its own update with both."""
    h = hub()
    a, _ = h.connect()
    b, _ = h.connect()
    h.publish("demo", book("demo", 1.0))
    h.step()
    first = a.take()
    assert first is not None
    assert b.take() is first  # the same bytes
    h.publish("demo", book("demo", 2.0))
    h.step()
    assert a.take() is not None  # a sent it; b did not
    h.publish("hedge", book("hedge", 3.0))
    h.step()
    data = b.take()
    assert data is not None
    assert {k: p["vega"] for k, p in entries(decode(data)).items()} == {
        ("risk:snapshot", "demo"): 2.0,
        ("risk:snapshot", "hedge"): 3.0,
    }
