"""The US demo (config/demo_us.toml, tests/us_demo.py) run as a process against the session's
redis-server, in a real browser: its margin, forwards and SPX-equivalent delta payloads appear in
Redis with sane values (the iron condor margined as a spread at its maximum potential loss less
its credit, the covered calls at Reg T's 50 % of the shares, SPAN of the E-mini hedge at its
price scan, the forwards at their carry, the SPX-equivalent delta the SPY delta at SPY / SPX),
and the dashboard shows them (the US margin, the forwards panel, the delta in SPX)."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from playwright.sync_api import Page, expect

from tests.browser.conftest import Riskd, free_port, riskd
from tests.servers import RedisServer
from tests.us_demo import write_us_demo

WAIT_S = 60.0
_positive = re.compile(r"^[1-9]\d*(\.\d+)?(e\+?\d+)?$")
_number = re.compile(r"^-?\d+(\.\d+)?(e[-+]?\d+)?$")


@dataclass
class Demo:
    daemon: Riskd
    redis: redis.Redis
    prefix: str

    def payload(
        self, family: str, field: str, ready: Callable[[dict[str, Any]], bool] = bool
    ) -> dict[str, Any]:
        """The payload of ``field`` in the ``family``'s snapshot hash, once there is one that
        is ``ready`` (the simulator quotes every instrument in turn: the first payloads may
        miss some)."""
        deadline = time.monotonic() + WAIT_S
        while True:
            raw = self.redis.hget(f"{self.prefix}:{family}:snapshot", field)
            out: dict[str, Any] = {} if raw is None else json.loads(raw)
            if out and ready(out):
                return out
            if time.monotonic() > deadline:
                raise TimeoutError(f"no ready {family} payload for {field}: see {self.daemon.log}")
            time.sleep(0.1)  # polling Redis: the daemon publishes on its own periods


@pytest.fixture(scope="module")
def demo(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    prefix = f"us-demo-{free_port()}"
    port = free_port()
    config = write_us_demo(
        tmp_path_factory.mktemp("us"), redis_url=redis_server.url, prefix=prefix, http_port=port
    )
    client = redis.Redis.from_url(redis_server.url)
    with riskd(config, port) as daemon:
        yield Demo(daemon, client, prefix)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()


def _complete(p: dict[str, Any]) -> bool:
    """A margin payload of the whole book: the E-mini hedge margined by SPAN, the condor and
    the covered calls by Reg T (the simulator's opening fills all in)."""
    us = p.get("us")
    return bool(us and us["span"] and len(us["reg_t_lines"]) == 2)


def _every_expiry(p: dict[str, Any]) -> bool:
    """A forwards payload with a spot and a forward at every expiry it lists, the SPX chain's
    two (the 0DTE and the weekly)."""
    n = 2 if p["underlying"] == "SPX" else 1
    return p["spot"] is not None and len(p["forward"]) == n and None not in p["forward"]


def _margin(demo: Demo) -> dict[str, Any]:
    return demo.payload("margin", "us", _complete)


def test_us_margin_is_published_with_sane_values(demo: Demo) -> None:
    p = _margin(demo)
    us = p["us"]
    assert p["v"] == 4
    assert us["classes"] == ["SPX", "SPY"]
    assert p["margin_im"] is None  # a US book: none of the crypto exchanges' figures
    assert p["portfolio"] is None
    assert us["class_kinds"] == ["broad_index", "equity"]
    condor, covered = us["reg_t_lines"]
    assert condor["rule"] == "spread"
    assert condor["strategy"].startswith("iron_condor:SPXW")
    # 10 condors, wings 100 points wide (6650 x 1.5 %): at most 100 x 100 x 10 USD at risk,
    # less a credit of a few points, or of none: in the hour before the close that the 0DTE is
    # the day's (ussim._zero_dte), its short strikes are ~7 sigma away and it is worth 1e-11
    assert 80_000.0 < condor["deposit_usd"] <= 100_000.0
    assert (covered["rule"], covered["units"], covered["shares"]) == ("covered", 20.0, 2000.0)
    spy = demo.payload("forwards", "SPY", _every_expiry)["spot"]
    assert covered["requirement_usd"] == pytest.approx(0.5 * 2000 * spy, rel=0.02)
    span = us["span"]
    assert span["spreads"] == 0.0
    assert span["instruments"] == [s for s in span["instruments"] if s.startswith("ES")]
    # 3 short E-mini futures: the worst scenario is a full scan up, 3 x 50 x 5 % of the price
    future = span["instruments"][0]
    f = demo.payload("forwards", future, _every_expiry)["spot"]
    assert span["scan_risk_usd"] == pytest.approx(3 * 50 * 0.05 * f, rel=0.02)
    assert p["margin_cme_span"] == span["total_usd"]
    assert p["margin_reg_t"] == pytest.approx(sum(us["reg_t_requirement_usd"]), rel=1e-12)
    assert us["pm_minimum_usd"] == [40 * 37.5, 20 * 37.5]
    assert all(pm >= m for pm, m in zip(us["pm_class_usd"], us["pm_minimum_usd"], strict=True))
    assert 0.0 < p["margin_us_portfolio"] <= sum(us["pm_class_usd"]) + 1e-6


def test_forwards_are_published_at_their_carry(demo: Demo) -> None:
    spx = demo.payload("forwards", "SPX", _every_expiry)
    spy = demo.payload("forwards", "SPY", _every_expiry)
    assert spx["exercise"] == "european"
    assert spy["exercise"] == "american"
    for p, q in ((spx, 0.013), (spy, 0.012)):
        assert p["status"] == "ok"
        t, fwd = p["tte_years"][-1], p["forward"][-1]
        assert fwd == pytest.approx(p["spot"] * math.exp((0.04 - q) * t), rel=2e-4)
        assert p["dividend_yield"][-1] == pytest.approx(q, abs=0.004)
        assert p["strikes_used"][-1] >= 5
    fields = demo.redis.hkeys(f"{demo.prefix}:forwards:snapshot")
    futures = [
        k for k in (f.decode() if isinstance(f, bytes) else f for f in fields) if k[:2] == "ES"
    ]
    (future,) = futures
    es = demo.payload("forwards", future, _every_expiry)
    assert es["forward"][0] == pytest.approx(es["spot"], rel=2e-4)  # the future's price
    assert es["dividend_yield"] == [None]


def test_spx_equivalent_delta_is_published(demo: Demo) -> None:
    complete = _margin(demo)["valuation_ts_ns"]
    p = demo.payload("crosshedge", "us", lambda p: p["valuation_ts_ns"] >= complete)
    assert p["benchmark"] == "SPX"
    assert p["underlyings"] == ["SPX", "SPY"]
    assert p["beta"] == [1.0, 1.0]
    spx_delta, spy_delta = p["beta_delta"]
    # SPY: 2000 shares less 20 short calls, in SPX units: about a tenth of its SPY delta
    assert spy_delta == pytest.approx(p["delta"][1] / 10.0, rel=0.05)
    assert 1000.0 < p["delta"][1] < 2000.0
    # SPX: 3 short E-mini futures (-150 SPX units at the future's premium) and the condor
    assert -250.0 < spx_delta < -50.0
    assert p["beta_delta_total"] == pytest.approx(spx_delta + spy_delta, rel=1e-9)
    assert p["beta_delta_usd"] == pytest.approx(p["beta_delta_total"] * p["benchmark_price"])


def test_the_dashboard_shows_the_us_figures(page: Page, demo: Demo) -> None:
    _margin(demo)
    page.goto(demo.daemon.url)
    expect(page.locator("#status")).to_contain_text("LIVE")
    us = page.locator("#panel-margin [data-us=margin]")
    expect(us).to_be_visible(timeout=30_000)
    expect(us.locator('[data-path="margin_reg_t"]')).to_have_attribute("data-value", _positive)
    expect(us.locator('[data-path="margin_cme_span"]')).to_have_attribute("data-value", _positive)
    expect(page.locator('#panel-margin [data-path="margin_im"]')).to_have_count(0)
    expect(page.locator("#panel-forwards .card")).to_have_count(3)
    expect(page.locator('#panel-forwards [data-path="forward.0"]').first).to_have_attribute(
        "data-value", _positive
    )
    total = page.locator('#panel-crosshedge [data-path="beta_delta_total"]')
    expect(total).to_have_attribute("data-value", _number)
    expect(page.locator("#panel-crosshedge thead").first).to_contain_text("Δ in SPX")
