"""The dashboard in a real browser (Debian's chromium, driven by Playwright) against riskd run as
a process: every panel renders with no console error; every figure's ``data-value`` equals what
Redis holds at its key, field and path (a replay, whose figures freeze at its end, of a book that
fills every panel: tests/dashboard_book.py); the page follows a quote live (MQTT); it recovers
after the daemon restarts; the access token is enforced.

Waits are on conditions: Playwright's ``expect``, or the page's next redraw
(``document.body.dataset.frames``, counted by main.js; the page redraws at least once a second).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.publish
import pytest
import redis
from playwright.sync_api import ConsoleMessage, Page, expect

from tests.browser.conftest import Riskd, free_port, riskd
from tests.dashboard_book import write_book
from tests.servers import MosquittoServer, RedisServer

PANELS = (
    "alerts",
    "exposures",
    "var",
    "attribution",
    "stress",
    "margin",
    "hedges",
    "liquidity",
    "crosshedge",
    "skew",
    "positioning",
    "strategies",
    "health",
)
FIGURES_JS = """() => [...document.querySelectorAll('[data-key]')].map(
    (e) => [e.dataset.key, e.dataset.field, e.dataset.path, e.dataset.value])"""
DERIVED_JS = """() => [...document.querySelectorAll('[data-derived]')].map(
    (e) => [e.dataset.derived, e.dataset.value])"""
WIDER_JS = """() => {
    const clipped = (e) => { for (let p = e.parentElement; p; p = p.parentElement) {
        if (getComputedStyle(p).overflowX !== 'visible') return true; } return false; };
    const W = document.documentElement.clientWidth;
    return [...document.querySelectorAll('body *')]
        .filter((e) => !clipped(e) && e.getBoundingClientRect().right > W)
        .slice(0, 10).map((e) => `${e.closest('section')?.id} ${e.tagName}.${e.className}`); }"""
ON_SCREEN_JS = """() => [...document.querySelectorAll('section[id^=panel-]')]
    .filter((s) => s.getBoundingClientRect().bottom > window.innerHeight).map((s) => s.id)"""
TOKEN_ENV = "RISKD_TEST_DASHBOARD_TOKEN"  # noqa: S105 - a variable's name
TOKEN = "browser-test-token-51c2"  # noqa: S105 - a test token


@dataclass
class Book:
    daemon: Riskd
    redis: redis.Redis
    prefix: str


@pytest.fixture(scope="module")
def book(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Book]:
    """The replay of tests/dashboard_book.py, at its end: every figure frozen."""
    prefix = "browser-book"
    port = free_port()
    config = write_book(
        tmp_path_factory.mktemp("book"), redis_url=redis_server.url, prefix=prefix, http_port=port
    )
    client = redis.Redis.from_url(redis_server.url)
    with riskd(config, port) as daemon:
        daemon.logged("replay finished: the final state is held and published; Ctrl-C exits")
        yield Book(daemon, client, prefix)
    client.close()


def errors(page: Page) -> list[str]:
    """Console errors and uncaught exceptions of ``page`` from now on."""
    found: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            found.append(f"console: {msg.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: found.append(f"pageerror: {exc}"))
    return found


def next_frame(page: Page) -> None:
    """Wait for the page's next redraw."""
    frames = page.evaluate("() => Number(document.body.dataset.frames ?? 0)")
    page.wait_for_function(f"() => Number(document.body.dataset.frames ?? 0) > {frames}")


def at(payload: Any, path: str) -> Any:
    for part in path.split("."):
        payload = payload[int(part)] if isinstance(payload, list) else payload[part]
    return payload


def same(value: Any, shown: str) -> bool:
    """Whether ``shown`` (a data-value) is ``value`` (from Redis) as the page must show it."""
    if value is None:
        return shown == ""
    if isinstance(value, bool | str):
        return bool(shown) and json.loads(shown) == value
    if isinstance(value, int) and re.fullmatch(r"-?\d+", shown):
        return int(shown) == value
    return shown != "" and float(shown) == float(value)


def mismatches(page: Page, client: redis.Redis) -> tuple[int, list[str]]:
    """How many figures the page shows, and those that differ from Redis."""
    figures = page.evaluate(FIGURES_JS)
    cache: dict[tuple[str, str], Any] = {}
    bad: list[str] = []
    for key, field, path, shown in figures:
        if (key, field) not in cache:
            raw = client.hget(key, field)
            cache[(key, field)] = None if raw is None else json.loads(raw)
        payload = cache[(key, field)]
        if payload is None:
            bad.append(f"{key} {field}: not in Redis")
        elif not same(at(payload, path), shown):
            bad.append(f"{key} {field} {path}: page {shown!r}, redis {at(payload, path)!r}")
    return len(figures), bad


def test_every_panel_renders_with_no_console_error(page: Page, book: Book) -> None:
    found = errors(page)
    page.goto(book.daemon.url)
    expect(page.locator("#status")).to_contain_text("LIVE")
    for panel in PANELS:
        expect(page.locator(f"#panel-{panel} .fig").first).to_be_visible()
    p = book.prefix
    exposures = page.locator(f'#panel-exposures tbody [data-key="{p}:snapshot"][data-path="vega"]')
    expect(exposures).to_have_count(4)  # desk and hedge, BTC and ETH
    for name in ("book", "expiry"):
        page.get_by_role("button", name=name, exact=True).click()
        expect(page.locator(f'#panel-exposures [data-key="{p}:snapshot"]').first).to_be_visible()
    page.locator("#panel-exposures th", has_text="vega").click()  # sorted by vega
    expect(page.locator("#panel-exposures th[aria-sort=descending]")).to_have_count(1)
    expect(page.locator("#panel-var .card")).to_have_count(2)
    expect(page.locator("#panel-var canvas")).to_have_count(2)
    expect(page.locator("#panel-stress td.cell")).to_have_count(2 * 13 * 7)
    expect(page.locator("#panel-stress td.worst")).to_have_count(2)
    expect(page.locator("#panel-margin [role=meter]")).to_have_count(4)
    expect(page.locator("#panel-hedges tbody tr")).to_have_count(4)
    expect(page.locator("#panel-hedges", has_text="BTC-28MAR25-100000-C")).to_be_visible()
    slippage = page.locator(f'#panel-hedges [data-key="{p}:slippage:snapshot"]')
    expect(slippage.and_(page.locator('[data-path="slippage_usd"]'))).to_have_count(4)
    expect(page.locator("#panel-liquidity .card")).to_have_count(2)  # desk and hedge
    expect(page.locator("#panel-liquidity .lvar-bar[role=img]")).to_have_count(2)
    cross = page.locator("#panel-crosshedge table.crosshedge tbody tr")
    expect(cross).to_have_count(2)  # desk and hedge, each hedged as a whole in BTC-PERPETUAL
    for path in ("hedge.contracts", "hedge.r2", "beta_delta_total", "value", "es"):
        expect(page.locator(f'#panel-crosshedge [data-path="{path}"]')).to_have_count(2)
    expect(page.locator("#panel-skew .card")).to_have_count(2)
    expect(page.locator("#panel-skew canvas")).to_have_count(4)  # smiles, term structures
    quotes = page.locator(f'#panel-skew [data-key="{p}:skew:snapshot"][data-path^="quote_vols."]')
    expect(quotes).to_have_count(2 * 14 + 2 * 12)  # calls and puts of 7 and 6 strikes
    expect(page.locator("#panel-positioning .card")).to_have_count(2)  # BTC and ETH
    expect(page.locator("#panel-positioning canvas")).to_have_count(4)  # OI, gamma profile
    levels = page.locator('#panel-positioning [data-path^="profile.gex."]')
    expect(levels).to_have_count(2 * 200)
    strikes = page.locator('#panel-positioning [data-path^="strikes.call_oi."]')
    expect(strikes).to_have_count(7 + 6)
    expect(page.locator("#panel-positioning table.positioning tbody tr")).to_have_count(4)
    expect(page.locator("#panel-strategies .card")).to_have_count(2)
    expect(page.locator("#panel-strategies canvas")).to_have_count(2)
    now = page.locator('#panel-strategies [data-path^="payoff.pnl_now."]')
    expect(now).to_have_count(2 * 61)
    expect(page.locator("#panel-alerts table.alerts tbody tr")).to_have_count(1)
    expect(page.locator("#panel-alerts ol.log li")).to_have_count(5)  # 3 raised, 2 cleared
    expect(page.locator("#panel-health", has_text="finished")).to_be_visible()
    assert found == []


def test_every_figure_equals_redis_at_its_key_field_and_path(page: Page, book: Book) -> None:
    """All of them, in every view: exposures by book, underlying and expiry; every chart's
    table. The page may be one update behind Redis: compared again at each redraw until equal.
    The window is as tall as the page, so every panel is on screen and redrawn as its payloads
    come (off screen, a panel is redrawn at most every 2 s: liquidity's figures move each
    second, after the replay too)."""
    page.goto(book.daemon.url)
    expect(page.locator("#status")).to_contain_text("LIVE")
    expect(page.locator("#panel-strategies .card")).to_have_count(2)
    for _ in range(3):  # panels drawn for the first time take their own height
        tall = page.evaluate("() => document.documentElement.scrollHeight") + 1000
        page.set_viewport_size({"width": 1600, "height": tall})
        next_frame(page)
    assert page.evaluate(ON_SCREEN_JS) == []
    counted = 0
    for level in ("book", "underlying", "expiry"):
        page.get_by_role("button", name=level, exact=True).click()
        for _ in range(100):
            counted, bad = mismatches(page, book.redis)
            if not bad:
                break
            next_frame(page)
        assert bad == [], bad[:20]
    assert counted > 1000  # every panel's figures, charts' tables included
    for key in {k for k, _, _, _ in page.evaluate(FIGURES_JS)}:
        assert key.startswith(f"{book.prefix}:"), key


def test_derived_figures_are_made_of_what_they_name(page: Page, book: Book) -> None:
    """Totals are the sums of the Redis figures they name; the VaR history's last point is the
    VaR payload's own figure; health figures name the daemon's state."""
    page.goto(book.daemon.url)
    expect(page.locator("#panel-exposures tfoot .fig").first).to_be_visible()
    page.locator("#panel-var details summary").first.click()
    expect(page.locator("#panel-var details table")).to_have_count(1)
    page.locator("#panel-var details:not([open]) summary").click()
    expect(page.locator("#panel-var details table")).to_have_count(2)
    # the health panel is below the fold: the page draws it when idle (or scrolled in), not with
    # the first frame
    expect(page.locator('[data-derived="health(feeds.0.name)"]')).to_have_count(1)
    derived = page.evaluate(DERIVED_JS)
    sums = [(d, v) for d, v in derived if d.startswith("sum(")]
    assert sums
    for names, shown in sums:
        values = []
        for ref in names[4:-1].split(";"):
            key, field, path = ref.split("|")
            values.append(at(json.loads(book.redis.hget(key, field) or "null"), path))
        assert math.isclose(float(shown), sum(values), rel_tol=1e-12), names
    for b in ("desk", "hedge"):
        var = json.loads(book.redis.hget(f"{book.prefix}:var:snapshot", b) or "null")
        history = [v for d, v in derived if d == f"stream({book.prefix}:var:stream|{b}|var)"]
        assert history
        assert same(var["var"], history[-1])
    health = dict(derived)
    assert health["health(feeds.0.name)"] == '"replay"'
    assert health["health(redis.connected)"] == "true"


def test_a_figure_follows_a_quote_live(
    page: Page, redis_server: RedisServer, mosquitto_server: MosquittoServer, tmp_path: Path
) -> None:
    """Quotes on MQTT move the delta of the book's call (out of the money: up with the vol,
    down again); each time the page shows what Redis holds."""
    live = _mqtt_daemon(tmp_path, redis_server, mosquitto_server)
    client = redis.Redis.from_url(redis_server.url)
    delta = page.locator(
        '#panel-exposures tbody [data-key="live:snapshot"][data-field="book:BTC"]'
        '[data-path="delta"]'
    )

    def redis_delta() -> float | None:
        raw = client.hget("live:snapshot", "book:BTC")
        value = None if raw is None else json.loads(raw)["delta"]
        return None if value is None else float(value)

    def shown_once_moved(since: float | None) -> float:
        """The delta once Redis has it moved by the quote (more than a day's time decay) and
        the page shows the same."""
        for _ in range(200):
            now = redis_delta()
            moved = now is not None and (since is None or abs(now - since) > 1e-3 * abs(since))
            if moved and same(now, delta.get_attribute("data-value") or ""):
                assert now is not None
                return now
            next_frame(page)
        raise AssertionError(
            f"delta: redis {redis_delta()}, page {delta.get_attribute('data-value')}"
        )

    kept = "() => document.contains(window.expiryButton)"
    with riskd(live.config, live.port) as daemon:
        page.goto(daemon.url)
        expect(page.locator("#status")).to_contain_text("LIVE")
        button = page.locator("#panel-exposures").get_by_role("button", name="expiry", exact=True)
        button.evaluate("(b) => { window.expiryButton = b; }")
        live.quote(0.55)
        low = shown_once_moved(None)
        live.quote(0.72)
        high = shown_once_moved(low)
        # the redraws moved the figures, not the toolbar: a click finds the button it aimed at
        assert page.evaluate(kept)
        button.click()
        expect(button).to_have_attribute("aria-pressed", "true")
        assert page.evaluate(kept)
        back = page.locator("#panel-exposures").get_by_role("button", name="underlying")
        back.click()  # the figure below is the (book, underlying) row's again
        expect(button).to_have_attribute("aria-pressed", "false")
        live.quote(0.61)
        middle = shown_once_moved(high)
        assert page.evaluate(kept)
    client.close()
    assert low < middle < high


def test_a_row_out_of_view_takes_new_figures_as_it_scrolls_in(
    page: Page, redis_server: RedisServer, mosquitto_server: MosquittoServer, tmp_path: Path
) -> None:
    """A row outside the exposures table's scroll box keeps its figures while a newer payload
    arrives (a large book's refresh costs only the rows on screen), and shows Redis' figures
    once scrolled in. The totals row, made from every payload, says when the page has it."""
    live = _mqtt_daemon(tmp_path, redis_server, mosquitto_server)
    client = redis.Redis.from_url(redis_server.url)
    row = '#panel-exposures tbody [data-key="live:snapshot"][data-field="book:BTC"]'
    delta = page.locator(f'{row}[data-path="delta"]')
    total = page.locator(
        '#panel-exposures tfoot [data-derived="sum(live:snapshot|book:BTC|delta_usd)"]'
    )

    def held(path: str) -> Any:
        raw = client.hget("live:snapshot", "book:BTC")
        return None if raw is None else json.loads(raw)[path]

    def wait_until(shown: Any, path: str) -> Any:
        """What Redis holds at ``path`` once ``shown`` (a locator) shows the same."""
        for _ in range(200):
            now = held(path)
            if now is not None and same(now, shown.get_attribute("data-value") or ""):
                return now
            next_frame(page)
        raise AssertionError(
            f"{path}: redis {held(path)}, page {shown.get_attribute('data-value')}"
        )

    with riskd(live.config, live.port) as daemon:
        page.goto(daemon.url)
        expect(page.locator("#status")).to_contain_text("LIVE")
        live.quote(0.55)
        expect(delta).not_to_have_attribute("data-value", "")
        low = wait_until(delta, "delta")
        # the table 3,000 px down a 100 px scroll box: its row far out of view
        page.evaluate(
            """() => {
                document.querySelector('#panel-exposures .scroll').style.maxHeight = '100px';
                document.querySelector('#panel-exposures table').style.marginTop = '3000px';
            }"""
        )
        next_frame(page)
        live.quote(0.72)
        for _ in range(200):  # Redis moved on and the page holds it (its totals show it)
            moved = held("delta")
            if abs(moved - low) > 1e-3 * abs(low):
                break
            next_frame(page)
        wait_until(total, "delta_usd")
        assert same(low, delta.get_attribute("data-value") or "")  # kept behind, out of view
        delta.scroll_into_view_if_needed()
        high = wait_until(delta, "delta")
    client.close()
    assert high > low


def test_the_page_recovers_after_the_daemon_restarts(
    page: Page, redis_server: RedisServer, mosquitto_server: MosquittoServer, tmp_path: Path
) -> None:
    live = _mqtt_daemon(tmp_path, redis_server, mosquitto_server)
    found = errors(page)
    with riskd(live.config, live.port) as daemon:
        page.goto(daemon.url)
        expect(page.locator("#status")).to_contain_text("LIVE")
        live.quote(0.6)
        vega = page.locator('#panel-exposures tbody [data-field="book:BTC"][data-path="vega"]')
        expect(vega).to_have_count(1)
        daemon.stop()
        expect(page.locator("#status")).to_contain_text("DISCONNECTED")
        expect(page.locator("body.offline")).to_have_count(1)
        daemon.start()
        expect(page.locator("#status")).to_contain_text("LIVE", timeout=30_000)
        expect(page.locator("body.offline")).to_have_count(0)
        live.quote(0.6)
        expect(vega).to_have_count(1)
    # the browser reports the refused reconnections as console errors; nothing else
    assert [e for e in found if "WebSocket" not in e and "ERR_CONNECTION_REFUSED" not in e] == []


def test_the_token_is_enforced_on_the_page_and_the_websocket(
    page: Page, redis_server: RedisServer, tmp_path: Path
) -> None:
    port = free_port()
    config = write_book(
        tmp_path,
        redis_url=redis_server.url,
        prefix="browser-token",
        http_port=port,
        speed=0,
        http_extra=f'token_env = "{TOKEN_ENV}"\n',
    )
    with riskd(config, port, env={TOKEN_ENV: TOKEN}) as daemon:
        response = page.goto(daemon.url)
        assert response is not None
        assert response.status == 401
        expect(page.locator("input[name=token]")).to_be_visible()
        assert page.locator("[data-key]").count() == 0
        status = page.evaluate(
            """(url) => new Promise((resolve) => {
                const ws = new WebSocket(url);
                ws.onopen = () => resolve('open');
                ws.onerror = () => resolve('refused');
            })""",
            daemon.url.replace("http", "ws") + "ws",
        )
        assert status == "refused"
        page.fill("input[name=token]", "not the token")
        page.click("button[type=submit]")
        expect(page.locator("#refused")).to_be_visible()
        page.fill("input[name=token]", TOKEN)
        page.click("button[type=submit]")
        expect(page.locator("#status")).to_contain_text("LIVE")
        expect(page.locator("#panel-exposures [data-key]").first).to_be_visible()
        assert TOKEN not in page.content()
        cookies = page.context.cookies()
        assert cookies
        assert all(TOKEN not in c["value"] for c in cookies)
        assert all(c["httpOnly"] for c in cookies)


# ------------------------------------------------------------------ an MQTT-fed daemon


@dataclass
class _Live:
    config: Path
    port: int
    broker: int
    instrument: str

    def quote(self, iv: float) -> None:
        """A quote of the book's option at ``iv`` (its forward and the index with it)."""
        now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        messages = [
            ("live/md/tick/btc_usd", {"instrument": "btc_usd", "price": 97_000.0, "ts": now_ms}),
            (
                f"live/md/quote/{self.instrument}",
                {
                    "instrument": self.instrument,
                    "mark": 0.05,
                    "iv": iv,
                    "underlying_price": 97_500.0,
                    "index_price": 97_000.0,
                    "ts": now_ms,
                },
            ),
        ]
        paho.mqtt.publish.multiple(
            [{"topic": t, "payload": json.dumps(m), "qos": 1} for t, m in messages],
            hostname="127.0.0.1",
            port=self.broker,
        )


def _mqtt_daemon(tmp_path: Path, redis_server: RedisServer, broker: MosquittoServer) -> _Live:
    """A config: book ``book`` holds one BTC call, quoted on MQTT; risk off."""
    expiry = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=40)
    instrument = f"BTC-{expiry.day}{expiry.strftime('%b').upper()}{expiry.strftime('%y')}-100000-C"
    (tmp_path / "positions.csv").write_text(
        f"book,instrument,quantity,avg_price\nbook,{instrument},10,0.04\n"
    )
    port = free_port()
    config = tmp_path / "riskd.toml"
    config.write_text(
        f"""[redis]
url = "{redis_server.url}"
prefix = "live"
[portfolio]
positions = "positions.csv"
[risk]
enabled = false
[http]
address = "127.0.0.1:{port}"
update_interval_ms = 50
[[feeds]]
kind = "mqtt"
name = "md"
port = {broker.port}
topic_prefix = "live/"
client_id = "riskd-browser-{port}"
"""
    )
    return _Live(config, port, broker.port, instrument)


def test_attribution_bars_sum_to_the_firms_total(page: Page, book: Book) -> None:
    """The firm's card: one bar per part of each breakdown, and the component ES the page shows
    (each equal to Redis) add up to the ES Redis holds."""
    page.goto(book.daemon.url)
    expect(page.locator("#status")).to_contain_text("LIVE")
    firm = json.loads(book.redis.hget(f"{book.prefix}:attribution:snapshot", "*") or "null")
    assert firm is not None
    mi = next(i for i, m in enumerate(firm["methods"]) if m["method"] == "historical")
    method = firm["methods"][mi]
    assert method["status"] == "ok"
    card = page.locator("#panel-attribution .card").first
    expect(card.locator(".breakdown")).to_have_count(len(method["breakdowns"]))
    for bi, b in enumerate(method["breakdowns"]):
        path = f"methods.{mi}.breakdowns.{bi}.parts."
        shown = card.locator(f'[data-key][data-field="*"][data-path^="{path}"]')
        values = [
            float(v)
            for p, v in shown.evaluate_all(
                "(es) => es.map((e) => [e.dataset.path, e.dataset.value])"
            )
            if p.endswith(".component_es")
        ]
        assert len(values) == len(b["parts"])
        assert math.isclose(sum(values), method["es"], rel_tol=1e-9), b["by"]
        expect(card.locator(".breakdown").nth(bi).locator(".bar")).to_have_count(len(b["parts"]))
    kinds = [b["by"] for b in method["breakdowns"]]
    assert kinds == ["book", "underlying", "expiry", "position", "strategy"]
    # the correlations used, a row and a column per underlying, each cell Redis's
    n = len(firm["underlyings"])
    assert n >= 2
    cells = card.locator('.correlations [data-field="*"][data-path^="correlations."]')
    expect(cells).to_have_count(n * n)
    for path, value in cells.evaluate_all(
        "(es) => es.map((e) => [e.dataset.path, e.dataset.value])"
    ):
        _, i, j = path.split(".")
        assert same(firm["correlations"][int(i)][int(j)], value), path
    # by strategy: the book's two holdings and the rest, each with its quantity and marginal
    # ES per unit as Redis holds them
    bi = kinds.index("strategy")
    parts = method["breakdowns"][bi]["parts"]
    assert [x["label"] for x in parts] == [
        "desk/straddle:ETH-28MAR25-3400-C/P",
        "desk/vertical:BTC-28MAR25-100000-C/120000",
        "desk/(no strategy)",
        "hedge/(no strategy)",
    ]
    assert [x["quantity"] for x in parts] == [-60.0, 15.0, None, None]
    table = card.locator(".breakdown.by-strategy")
    for k, x in enumerate(parts):
        for name in ("label", "quantity", "marginal_es_per_unit"):
            shown = table.locator(f'[data-path="methods.{mi}.breakdowns.{bi}.parts.{k}.{name}"]')
            want = x[name]
            value = shown.get_attribute("data-value") or ""
            if name == "label":
                assert value == json.dumps(want), value
            else:
                assert (value == "") if want is None else math.isclose(float(value), want), name


def test_liquidity_and_slippage_figures_are_redis_own(page: Page, book: Book) -> None:
    """Each book's card: the plain VaR and ES, the Bangia add-on and the liquidity-adjusted
    figures (the add-on is what lies between them in Redis), the exit cost at the quotes; beside
    each hedge its expected slippage against the perpetual's order book, as Redis holds them."""
    page.goto(book.daemon.url)
    expect(page.locator("#status")).to_contain_text("LIVE")
    expect(page.locator("#panel-liquidity .card")).to_have_count(2)
    # as a person reads it: on screen (redrawn each frame), each card's positions opened (the
    # table is built only while open, and stays open across redraws)
    page.locator("#panel-liquidity").scroll_into_view_if_needed()
    for b in ("desk", "hedge"):
        card = page.locator(f"#panel-liquidity .card:has([data-field='{b}'])")
        card.locator("details summary").click()
        expect(card.locator("details table")).to_have_count(1)
    key = f"{book.prefix}:liquidity:snapshot"
    wanted: list[tuple[str, str, str]] = []  # key, field, path: each shown in its place
    for b in ("desk", "hedge"):
        liquidity = json.loads(book.redis.hget(key, b) or "null")
        assert liquidity["status"] == "ok", liquidity["status"]
        assert math.isclose(
            liquidity["lvar"], liquidity["var"] + liquidity["liquidity_cost_usd"], rel_tol=1e-12
        )
        paths = ["var", "es", "lvar", "les", "liquidity_cost_usd", "exit_cost_usd"]
        paths += [f"positions.{i}.cost_usd" for i in range(len(liquidity["positions"]))]
        wanted += [(f"#panel-liquidity .card:has([data-field='{b}'])", b, p) for p in paths]
    desk = json.loads(book.redis.hget(key, "desk") or "null")
    assert desk["liquidity_cost_usd"] > 0 < desk["exit_cost_usd"]  # the desk's options are quoted
    assert desk["lvar"] > desk["var"]
    figures = [
        page.locator(f'{where} [data-key="{key}"][data-field="{field}"][data-path="{path}"]').first
        for where, field, path in wanted
    ]
    for figure in figures:
        expect(figure).to_be_attached()
    # the spreads are sampled on every period, also once the replay is over: the figures move a
    # little each second, and the page may be one update behind; compared again at each redraw
    for _ in range(100):
        bad = []
        for figure, (_, field, path) in zip(figures, wanted, strict=True):
            shown = figure.get_attribute("data-value") or ""
            held = at(json.loads(book.redis.hget(key, field) or "null"), path)
            if not same(held, shown):
                bad.append(f"{field} {path}: page {shown!r}, redis {held!r}")
        if not bad:
            break
        next_frame(page)
    assert bad == [], bad
    key = f"{book.prefix}:slippage:snapshot"
    fields = sorted(f.decode() if isinstance(f, bytes) else f for f in book.redis.hkeys(key))
    assert fields == ["desk:BTC", "desk:ETH", "hedge:BTC", "hedge:ETH"]
    priced = 0
    for field in fields:
        slip = json.loads(book.redis.hget(key, field) or "null")
        row = page.locator(f"#panel-hedges tbody tr:has([data-field='{field}'])")
        figure = row.locator(f'[data-key="{key}"][data-field="{field}"][data-path="slippage_usd"]')
        expect(figure).to_have_count(1)
        assert same(slip["slippage_usd"], figure.get_attribute("data-value") or ""), field
        status = row.locator(f'[data-key="{key}"][data-path="status"]')
        expect(status).to_have_count(0 if slip["status"] == "ok" else 1)  # only to say why not
        priced += slip["status"] == "ok" and slip["slippage_usd"] > 0
    assert priced >= 2  # walked through the replayed order books


@pytest.mark.parametrize("width", [1440, 1280])
def test_the_page_fits_the_viewport_without_scrolling_sideways(
    page: Page, book: Book, width: int
) -> None:
    """Every panel drawn (those below the fold too), nothing makes the page wider than the
    window: a wide table scrolls within its panel."""
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(book.daemon.url)
    expect(page.locator("#status")).to_contain_text("LIVE")
    for panel in PANELS:
        expect(page.locator(f"#panel-{panel} .fig").first).to_be_attached()
    expect(page.locator("#panel-attribution .breakdown").first).to_be_attached()
    sizes = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert sizes[0] <= sizes[1], (sizes, page.evaluate(WIDER_JS))


def test_open_interest_by_strike_sums_to_the_total_and_zero_gamma_is_shown(
    page: Page, book: Book
) -> None:
    """BTC over every expiry: the calls' and puts' open interest the page shows by strike (each
    equal to Redis) add up to Redis's ``oi_total``; the zero-gamma level is shown where the
    profile's table changes sign. The page may be one update behind Redis: read again at each
    redraw until it shows what Redis holds."""
    page.goto(book.daemon.url)
    expect(page.locator("#status")).to_contain_text("LIVE")
    card = page.locator("#panel-positioning .card").first
    oi = card.locator('[data-field="BTC:all"][data-path^="strikes."][data-path*="_oi."]')
    zero = card.locator('[data-field="BTC:all"][data-path="zero_gamma"]')
    for _ in range(100):  # the valuation time moves on: so do the figures of each period
        p = json.loads(book.redis.hget(f"{book.prefix}:positioning:snapshot", "BTC:all") or "{}")
        if p and same(p["zero_gamma"], zero.get_attribute("data-value") or ""):
            break
        next_frame(page)
    expect(oi).to_have_count(2 * len(p["strikes"]["strike"]))
    values = [float(v) for v in oi.evaluate_all("(es) => es.map((e) => e.dataset.value)")]
    assert math.isclose(sum(values), p["oi_total"], rel_tol=1e-12)
    assert p["zero_gamma"] is not None  # the book's chain has one: dealers short the put wing
    assert same(p["zero_gamma"], zero.get_attribute("data-value") or "")
    gex = [g for g in p["profile"]["gex"] if g is not None]
    assert min(gex) < 0.0 < max(gex)
