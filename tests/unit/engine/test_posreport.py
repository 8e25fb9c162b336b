"""The positioning payloads from the inbox's open interest (engine.risk.posreport), and alert
rules on them (spot crossing the zero-gamma level)."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest

from engine.alerts import MARKET_BOOK, AlertEngine, AlertRule
from engine.events import OpenInterest, Quote
from engine.inbox import Inbox
from engine.instruments import InstrumentRegistry, parse_deribit_name
from engine.outputs import PositioningPayload, encode
from engine.risk.positioning import PositioningConfig
from engine.risk.posreport import Positioning

EXPIRY = "2024-12-27T08:00:00Z"
NOW = 1_732_406_400_000_000_000  # 2024-11-24 00:00 UTC
YEAR_NS = 365 * 86_400 * 1_000_000_000
F = 100_000.0
SIGMA = 0.5


def quote(name: str, oi: float, volume: float | None, index: float | None = None) -> Quote:
    return Quote(
        instrument=name,
        mark=0.05,
        iv=SIGMA,
        underlying_price=F,
        index_price=index,
        open_interest=oi,
        volume=volume,
        ts_event=NOW,
        ts_recv=NOW,
    )


def interest() -> dict[str, Quote | OpenInterest]:
    """Through the inbox, as the daemon reads it: quotes with open interest, a book summary's
    open interest, and a quote without any (left out)."""
    inbox = Inbox()
    inbox.put(quote("BTC-27DEC24-100000-C", 30.0, 12.0, index=99_500.0))
    inbox.put(quote("BTC-27DEC24-100000-P", 10.0, 4.0))
    inbox.put(quote("BTC-27DEC24-80000-P", 20.0, None))
    inbox.put(
        OpenInterest(
            instrument="BTC-27DEC24-120000-C",
            open_interest=5.0,
            iv=SIGMA,
            underlying_price=F,
            ts_event=NOW,
            ts_recv=NOW,
        )
    )
    inbox.put(Quote(instrument="BTC-27DEC24-90000-C", mark=0.1, ts_event=NOW, ts_recv=NOW))
    return inbox.interest()


def build(config: PositioningConfig | None = None) -> dict[str, PositioningPayload]:
    pos = Positioning(config or PositioningConfig())
    registry = InstrumentRegistry()
    return dict(pos.payloads(interest(), registry.get, [], NOW, NOW))


def cash_gamma(K: float) -> float:
    """Black-76 cash gamma, USD per 1 % move, written out (docs/positioning.md)."""
    inst = parse_deribit_name("BTC-27DEC24-100000-C")
    assert inst is not None
    assert inst.expiry_ns is not None
    T = (inst.expiry_ns - NOW) / YEAR_NS
    sd = SIGMA * math.sqrt(T)
    d1 = math.log(F / K) / sd + sd / 2
    return math.exp(-d1 * d1 / 2) / math.sqrt(2 * math.pi) * F / sd / 100


def test_payloads_per_expiry_and_all() -> None:
    """Calls 100k (oi 30, volume 12) and 120k (5, none); puts 100k (10, 4) and 80k (20, none).

    put/call oi = (10 + 20) / (30 + 5) = 0.857142...; volume 4 / 12 = 1/3.
    Max pain: holders are paid at 80k: puts 10 x 20k = 200k; at 100k: put 80k 0, calls 0 -> 0;
    at 120k: calls 30 x 20k = 600k. So 100k, 0 USD.
    GEX (dealers long calls, short puts) = 30 g(100k) + 5 g(120k) - 10 g(100k) - 20 g(80k)."""
    got = build()
    assert set(got) == {f"BTC:{EXPIRY}", "BTC:all"}
    p = got[f"BTC:{EXPIRY}"]
    assert (p.underlying, p.expiry, p.options, p.unpriced) == ("BTC", EXPIRY, 4, 0)
    assert p.spot == 99_500.0  # the index that came with a quote
    assert (p.call_oi, p.put_oi, p.oi_total) == (35.0, 30.0, 65.0)
    assert p.put_call_oi == pytest.approx(30.0 / 35.0, rel=1e-15)
    assert (p.call_volume, p.put_volume) == (12.0, 4.0)
    assert p.put_call_volume == pytest.approx(1.0 / 3.0, rel=1e-15)
    assert (p.max_pain, p.max_pain_payout_usd) == (100_000.0, 0.0)
    g80, g100, g120 = cash_gamma(80_000.0), cash_gamma(100_000.0), cash_gamma(120_000.0)
    assert p.gex_calls == pytest.approx(30 * g100 + 5 * g120, rel=1e-12)
    assert p.gex_puts == pytest.approx(-10 * g100 - 20 * g80, rel=1e-12)
    assert p.gex_total == pytest.approx(p.gex_calls + p.gex_puts, rel=1e-15)
    s = p.strikes
    assert s.strike == [80_000.0, 100_000.0, 120_000.0]
    assert (s.call_oi, s.put_oi) == ([0.0, 30.0, 5.0], [20.0, 10.0, 0.0])
    assert s.gex == pytest.approx([-20 * g80, 20 * g100, 5 * g120], rel=1e-12)
    assert s.oi_change_session == [0.0, 0.0, 0.0]
    assert len(p.profile.level) == len(p.profile.gex) == 200
    assert p.profile.level[0] == pytest.approx(0.8 * 99_500.0)
    assert p.profile.level[-1] == pytest.approx(1.2 * 99_500.0)
    assert p.status == "ok"
    assert p.units["gex"] == "USD per 1% move"
    everything = got["BTC:all"]
    assert everything.expiry_ns is None
    assert everything.max_pain is None  # across expiries: none
    assert everything.gex_total == pytest.approx(p.gex_total, rel=1e-15)
    encode(p)  # JSON-able (non-finite figures would be null)


def test_zero_gamma_and_spot_minus_zero_gamma() -> None:
    """Short put gamma at 80k and long call gamma at 100k-120k: the profile crosses zero
    between the spot's -20 % and the spot, where the long 100k gamma takes over."""
    p = build()[f"BTC:{EXPIRY}"]
    assert p.zero_gamma is not None
    assert p.spot is not None
    assert p.spot_minus_zero_gamma == pytest.approx(p.spot - p.zero_gamma, rel=1e-15)
    levels, gex = np.array(p.profile.level), np.array(p.profile.gex, dtype=np.float64)
    k = int(np.searchsorted(levels, p.zero_gamma))
    assert gex[k - 1] * gex[k] < 0.0  # the crossing lies between these two levels
    assert levels[0] < p.zero_gamma < p.spot


def test_the_opposite_assumption_flips_the_sign() -> None:
    usual = build()[f"BTC:{EXPIRY}"]
    opposite = build(PositioningConfig(dealer="short_calls_long_puts"))[f"BTC:{EXPIRY}"]
    assert opposite.gex_total == pytest.approx(-usual.gex_total, rel=1e-15)
    assert opposite.zero_gamma == pytest.approx(usual.zero_gamma, rel=1e-12)
    assert opposite.dealer == "short_calls_long_puts"


def test_changes_over_the_session() -> None:
    pos = Positioning(PositioningConfig(window_s=60.0))
    registry = InstrumentRegistry()
    first = dict(pos.payloads(interest(), registry.get, [], NOW, NOW))[f"BTC:{EXPIRY}"]
    more = interest()
    more["BTC-27DEC24-80000-P"] = quote("BTC-27DEC24-80000-P", 26.0, None)
    later = NOW + 30 * 1_000_000_000
    p = dict(pos.payloads(more, registry.get, [], later, later))[f"BTC:{EXPIRY}"]
    assert p.session_start_ns == NOW
    assert (p.oi_change_session, p.oi_change_window) == (6.0, 6.0)
    assert p.strikes.oi_change_session == [6.0, 0.0, 0.0]
    assert p.gex_change_session == pytest.approx(p.gex_total - first.gex_total, rel=1e-12)


def test_alert_when_the_spot_crosses_the_zero_gamma_level() -> None:
    """``spot_minus_zero_gamma`` goes negative when the spot falls below the zero-gamma level:
    a ``below = 0`` rule raises, at expiry scope, of no book."""
    p = build()[f"BTC:{EXPIRY}"]
    assert p.spot_minus_zero_gamma is not None
    assert p.spot_minus_zero_gamma > 0.0  # the spot is above it now
    rules = [
        AlertRule(
            name="below_zero_gamma",
            metric="spot_minus_zero_gamma",
            scope="expiry",
            underlying="BTC",
            below=0.0,
        ),
        AlertRule(name="gex", metric="gex_total", scope="expiry", expiry="all", above=0.0),
    ]
    engine = AlertEngine(rules)
    assert engine.check(p) == []
    (raised,) = engine.check(build()["BTC:all"])  # the all-expiry payload: gex_total > 0
    assert (raised.id, raised.unit) == ("gex:*:BTC:all", "USD per 1% move")
    crossed = msgspec.structs.replace(p, spot_minus_zero_gamma=-150.0)
    (alert,) = engine.check(crossed)
    assert (alert.alert, alert.state, alert.book) == ("below_zero_gamma", "raised", MARKET_BOOK)
    assert (alert.underlying, alert.expiry, alert.value) == ("BTC", EXPIRY, -150.0)
    assert alert.unit == "USD"
