"""Open interest and dealer gamma on small chains worked by hand (engine.risk.positioning)."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from engine.greeks import black76
from engine.risk import positioning as pos
from engine.risk.report import RiskConfig


def chain(
    strike: list[float],
    is_call: list[bool],
    oi: list[float],
    *,
    forward: float = 100.0,
    T: float = 0.25,
    sigma: float = 0.4,
    desk: list[float] | None = None,
) -> pos.OptionInterest:
    n = len(strike)
    return pos.OptionInterest(
        strike=np.array(strike, dtype=np.float64),
        is_call=np.array(is_call, dtype=np.bool_),
        forward=np.full(n, forward),
        T=np.full(n, T),
        sigma=np.full(n, sigma),
        oi=np.array(oi, dtype=np.float64),
        volume=np.full(n, math.nan),
        desk=np.zeros(n) if desk is None else np.array(desk, dtype=np.float64),
    )


# ---------------------------------------------------------------- max pain


def test_max_pain_at_the_middle_strike() -> None:
    """Calls 90 (oi 10), 100 (20), 110 (30); puts 100 (40), 90 (5). Holders are paid, if the
    underlying settles at

        90:  calls 0;                              puts 100P 40 x 10 = 400        -> 400
        100: calls 90C 10 x 10 = 100;              puts 0                         -> 100
        110: calls 90C 10 x 20 + 100C 20 x 10 = 400; puts 0                       -> 400

    so max pain is 100, where they are paid 100 USD."""
    c = chain([90, 100, 110, 100, 90], [True, True, True, False, False], [10, 20, 30, 40, 5])
    assert pos.max_pain(c.strike, c.is_call, c.oi) == (100.0, 100.0)


def test_max_pain_away_from_the_middle() -> None:
    """Call 80 (oi 1); puts 100 (10) and 120 (10). At

        80:  calls 0;            puts 120P 10 x 40 + 100P 10 x 20 = 600   -> 600
        100: calls 1 x 20 = 20;  puts 120P 10 x 20 = 200                  -> 220
        120: calls 1 x 40 = 40;  puts 0                                   -> 40

    the put holders are paid least if it settles at 120: max pain 120 (40 USD)."""
    c = chain([80, 100, 120], [True, False, False], [1, 10, 10])
    assert pos.max_pain(c.strike, c.is_call, c.oi) == (120.0, 40.0)


def test_max_pain_without_open_interest() -> None:
    c = chain([100, 110], [True, False], [0, 0])
    assert pos.max_pain(c.strike, c.is_call, c.oi) == (None, None)


# ---------------------------------------------------------------- gamma exposure

# F = K = 100, T = 0.25, sigma = 0.4: sigma sqrt(T) = 0.2, d1 = ln(1) / 0.2 + 0.2 / 2 = 0.1,
# phi(0.1) = exp(-0.005) / sqrt(2 pi) = 0.396952547477012, gamma = phi / (F 0.2) = 0.0198476...
# per USD, cash gamma = gamma F^2 / 100 = phi(d1) F / 0.2 / 100 = 1.98476273738506 USD per 1 %.
CASH_ATM = math.exp(-0.005) / math.sqrt(2.0 * math.pi) * 100.0 / 0.2 / 100.0


def test_cash_gamma_of_one_option_by_hand() -> None:
    c = chain([100.0], [True], [1.0])
    assert_allclose(pos.option_gex(c), [1.98476273738506], rtol=1e-13)


def test_gamma_exposure_by_hand() -> None:
    """Call 100 (oi 10) and put 100 (oi 4) at F = 100: with dealers long the calls and short
    the puts, GEX = (10 - 4) x 1.98476 = 11.9086 USD per 1 % move; the opposite assumption
    gives -11.9086; with the desk long the put and flat the call (dealer = book) only the put
    counts, long: +4 x 1.98476 = 7.939."""
    c = chain([100.0, 100.0], [True, False], [10.0, 4.0], desk=[0.0, 2.5])
    unit = pos.option_gex(c)
    usual = pos.dealer_position(c, "long_calls_short_puts")
    assert_allclose(usual, [10.0, -4.0])
    assert (usual * unit).sum() == pytest.approx(6.0 * CASH_ATM, rel=1e-14)
    opposite = pos.dealer_position(c, "short_calls_long_puts")
    assert (opposite * unit).sum() == pytest.approx(-6.0 * CASH_ATM, rel=1e-14)
    book = pos.dealer_position(c, "book")
    assert_allclose(book, [0.0, 4.0])
    assert (book * unit).sum() == pytest.approx(4.0 * CASH_ATM, rel=1e-14)


@settings(max_examples=60, deadline=None)
@given(
    F=st.floats(50.0, 200.0),
    K=st.floats(40.0, 250.0),
    T=st.floats(0.01, 2.0),
    sigma=st.floats(0.05, 1.5),
)
def test_cash_gamma_is_black76_gamma_times_f_squared_over_100(
    F: float, K: float, T: float, sigma: float
) -> None:
    """Against the pricing kernels' Black-76 gamma (r = 0): an independent implementation."""
    c = chain([K], [False], [1.0], forward=F, T=T, sigma=sigma)
    gamma = float(black76(False, F, K, T, 0.0, sigma).gamma)
    assert_allclose(pos.option_gex(c), [gamma * F * F / 100.0], rtol=1e-11, atol=1e-300)


def test_option_without_vol_counts_nan() -> None:
    c = chain([100.0, 100.0], [True, True], [1.0, 1.0])
    c.sigma[1] = math.nan
    out = pos.option_gex(c)
    assert math.isfinite(out[0])
    assert math.isnan(out[1])


# ---------------------------------------------------------------- the profile


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 30),
    seed=st.integers(0, 2**32 - 1),
)
def test_profile_kernel_equals_the_numpy_reference(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    c = pos.OptionInterest(
        strike=rng.uniform(50, 150, n),
        is_call=rng.random(n) < 0.5,
        forward=rng.uniform(90, 110, n),
        T=rng.uniform(0.01, 1.0, n),
        sigma=rng.uniform(0.2, 1.2, n),
        oi=rng.uniform(0, 1000, n),
        volume=np.full(n, math.nan),
        desk=np.zeros(n),
    )
    w = pos.dealer_position(c, "long_calls_short_puts")
    moves = np.linspace(0.8, 1.2, 41)
    want = pos.gamma_profile_numpy(c, w, moves)
    # The two sum the same terms in different orders: they differ by a few roundings of the
    # terms, not of the sum, which crosses zero where the calls' gamma meets the puts' (one
    # move's sum was 1e-4 of the others' and off by 1e-11 of itself: seed 2125, n 25).
    assert_allclose(
        pos.gamma_profile(c, w, moves), want, rtol=1e-11, atol=1e-12 * np.abs(want).max()
    )


def test_profile_at_today_is_the_total_gamma_exposure() -> None:
    c = chain([90, 100, 110, 100], [True, True, True, False], [10, 20, 30, 40])
    w = pos.dealer_position(c, "long_calls_short_puts")
    moves = pos.PositioningConfig(levels=201).moves()
    assert moves[100] == 1.0
    assert pos.gamma_profile(c, w, moves)[100] == pytest.approx((w * pos.option_gex(c)).sum())


def test_profile_leaves_out_options_that_cannot_be_valued() -> None:
    c = chain([100.0, 100.0], [True, True], [1.0, 1.0])
    c.sigma[1] = math.nan
    moves = np.array([0.9, 1.0, -1.0])
    out = pos.gamma_profile(c, np.array([1.0, 1.0]), moves)
    one = pos.gamma_profile(c.take(np.array([0])), np.array([1.0]), moves[:2])
    assert_allclose(out[:2], one)
    assert math.isnan(out[2])  # a move <= 0


def test_zero_gamma_interpolates_between_levels() -> None:
    """Profile -2, -1, +3 at 90, 100, 110: the sign changes between 100 and 110, at
    100 + 10 x 1 / (1 + 3) = 102.5."""
    levels = np.array([90.0, 100.0, 110.0])
    assert pos.zero_gamma(levels, np.array([-2.0, -1.0, 3.0]), 100.0) == 102.5
    assert pos.zero_gamma(levels, np.array([1.0, 2.0, 3.0]), 100.0) is None
    assert pos.zero_gamma(levels, np.array([-1.0, 0.0, 1.0]), 100.0) == 100.0
    assert pos.zero_gamma(levels, np.full(3, math.nan), 100.0) is None


def test_zero_gamma_nearest_the_spot_of_several() -> None:
    levels = np.array([80.0, 90.0, 100.0, 110.0, 120.0])
    profile = np.array([1.0, -1.0, -1.0, -1.0, 1.0])  # crossings at 85 and 115
    assert pos.zero_gamma(levels, profile, 100.0) == 85.0  # a tie: the first
    assert pos.zero_gamma(levels, profile, 112.0) == 115.0


def test_zero_gamma_of_a_chain_is_where_the_profile_crosses() -> None:
    """Dealers short the 90 put and long the 110 call (oi 10 each): short gamma below, long
    above, so the profile rises through 0 between them; the exposure recomputed at the level
    found is ~0 (linear interpolation on a fine grid)."""
    c = chain([90.0, 110.0], [False, True], [10.0, 10.0])
    w = pos.dealer_position(c, "long_calls_short_puts")
    moves = pos.PositioningConfig(levels=2001).moves()
    profile = pos.gamma_profile(c, w, moves)
    zero = pos.zero_gamma(100.0 * moves, profile, 100.0)
    assert zero is not None
    assert 90.0 < zero < 110.0
    at_zero = pos.gamma_profile(c, w, np.array([zero / 100.0]))[0]
    assert abs(at_zero) < 1e-4 * np.abs(profile).max()
    below = pos.gamma_profile(c, w, np.array([(zero - 1.0) / 100.0]))[0]
    assert below < 0.0  # short gamma under the zero-gamma level


# ---------------------------------------------------------------- the rest


def test_by_strike_and_put_call_ratio() -> None:
    strikes, (calls, puts) = pos.by_strike(
        np.array([110.0, 100.0, 110.0]), np.array([1.0, 2.0, 3.0]), np.array([0.5, np.nan, 1.0])
    )
    assert strikes.tolist() == [100.0, 110.0]
    assert calls.tolist() == [2.0, 4.0]
    assert puts.tolist() == [0.0, 1.5]
    assert pos.put_call_ratio(3.0, 4.0) == 0.75
    assert pos.put_call_ratio(3.0, 0.0) is None


def test_session_changes() -> None:
    """Window 10 s. OI 100 at t=0, 120 at 6 s, 150 at 12 s, 160 at 20 s. The window compares
    with the latest snapshot at least 10 s old: at 6 s there is none (the session's first,
    t=0: +20); at 12 s it is t=0 (+50); at 20 s it is t=6 s (160 - 120 = +40)."""
    s = pos.Session(10.0)
    ns = 1_000_000_000

    def at(t: int, oi: float, gex: float | None, zero: float | None) -> pos.Changes:
        return s.update("BTC:all", pos.Snapshot(t * ns, oi, gex, zero), {100.0: oi})

    first = at(0, 100.0, 5.0, 95.0)
    assert (first.oi_session, first.oi_window, first.gex_session) == (0.0, 0.0, 0.0)
    young = at(6, 120.0, 7.0, None)
    assert (young.oi_window, young.window_start_ns) == (20.0, 0)  # younger than the window
    assert young.zero_gamma_session is None
    c = at(12, 150.0, 4.0, 97.0)
    assert (c.oi_session, c.oi_window, c.window_start_ns) == (50.0, 50.0, 0)
    assert c.gex_window == -1.0
    assert c.zero_gamma_session == 2.0
    d = at(20, 160.0, 1.0, 96.0)
    assert (d.oi_session, d.oi_window, d.window_start_ns) == (60.0, 40.0, 6 * ns)
    assert d.zero_gamma_window is None  # none at t=6 s
    assert d.oi_by_strike_session == {100.0: 60.0}


def test_config_names_the_bad_key() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"risk\.positioning\.books"):
        msgspec.convert({"positioning": {"books": ["main"]}}, RiskConfig)
    with pytest.raises(msgspec.ValidationError, match=r"\$\.positioning\.dealer"):
        msgspec.convert({"positioning": {"dealer": "sideways"}}, RiskConfig)
    with pytest.raises(msgspec.ValidationError, match=r"\$\.positioning\.levels"):
        msgspec.convert({"positioning": {"levels": 2}}, RiskConfig)
    cfg = msgspec.convert({"positioning": {"dealer": "book", "books": ["main"]}}, RiskConfig)
    assert cfg.positioning.books == ["main"]
