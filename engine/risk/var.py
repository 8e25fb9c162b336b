"""Value at risk and expected shortfall of a book's P&L over a horizon (docs/risk.md).

Conventions, the same for every method:

- **P&L** is in USD over the horizon; a **loss** is minus the P&L. VaR and ES are reported as
  losses: positive when the book loses at that confidence (a book that gains in every scenario
  has a negative VaR).
- **Confidence** ``c`` (e.g. 0.99 for VaR, 0.975 for ES) is the probability that the loss does
  not exceed VaR; the tail is the worst ``1 - c`` of outcomes. ES is the mean loss in that tail.
- **Horizon** ``N`` days (calendar days, as theta): the parametric methods scale the one-day
  covariance of the underlyings' log-returns by ``N`` (square root of time for the volatility).
- **Moves** are log-returns of each underlying's price, one entry per underlying, in the order
  of the arrays given.

Parametric methods (closed forms, no revaluation):

- :func:`delta_normal`: P&L = d·r with ``d`` the USD deltas (``delta_usd``: delta x price) and
  r ~ N(0, N Σ): VaR = z σ, ES = σ φ(z) / (1 - c), σ² = N d'Σd, z = Φ⁻¹(c).
- :func:`delta_gamma`: P&L = d·r + ½ Σᵤ gᵤ rᵤ², ``g`` the USD gammas (Γ·S², USD per unit of
  return squared: 100 x the cash gamma per 1 % move). Its first four cumulants are exact for
  normal r; the quantile is Cornish-Fisher's expansion in skewness and excess kurtosis, and the
  ES is the mean of that expansion over the tail (closed form, :func:`cornish_fisher`).

Empirical methods (historical simulation, Monte Carlo) produce scenario P&Ls; :func:`empirical`
turns them into VaR and ES without interpolation (Acerbi and Tasche's discrete ES):
with the n losses sorted ascending L₍₁₎ <= ... <= L₍ₙ₎ and k = ⌈n c⌉,
VaR = L₍ₖ₎ and ES = (Σ_{i>k} L₍ᵢ₎ + (k - n c) L₍ₖ₎) / (n (1 - c)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from engine.risk.scenarios import BookScenarioPnL, ScenarioBook, ScenarioPnL, book_scenario_pnl

__all__ = [
    "BooksVaR",
    "Moments",
    "VaR",
    "cornish_fisher",
    "delta_gamma",
    "delta_gamma_moments",
    "delta_normal",
    "empirical",
    "historical",
    "historical_books",
    "mc_draws",
    "monte_carlo",
    "monte_carlo_books",
]

FloatArray = npt.NDArray[np.float64]
_N01 = NormalDist()


@dataclass(frozen=True, slots=True)
class VaR:
    """VaR and ES at one confidence each, as losses in USD (positive: a loss)."""

    var: float
    es: float
    var_confidence: float
    es_confidence: float
    horizon_days: float
    method: str


@dataclass(frozen=True, slots=True)
class Moments:
    """Mean, standard deviation, skewness and excess kurtosis of a P&L (USD)."""

    mean: float
    std: float
    skew: float
    kurt: float


def _check_levels(confidence: float, es_confidence: float) -> None:
    for name, c in (("confidence", confidence), ("es_confidence", es_confidence)):
        if not (0.5 <= c < 1.0):
            raise ValueError(f"{name} must be in [0.5, 1), got {c!r}")


def _check_horizon(horizon_days: float) -> None:
    if not (math.isfinite(horizon_days) and horizon_days > 0.0):
        raise ValueError(f"horizon_days must be > 0, got {horizon_days!r}")


def _covariance(cov: npt.ArrayLike) -> FloatArray:
    """``cov`` as a float array, checked: square, finite, symmetric (its size is the caller's)."""
    s = np.asarray(cov, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise ValueError(f"cov must be a square matrix, got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("cov must be finite")
    if not np.allclose(s, s.T, rtol=1e-12, atol=0.0):
        raise ValueError("cov must be symmetric")
    return s


def _vectors(
    delta_usd: npt.ArrayLike, cov: npt.ArrayLike, horizon_days: float
) -> tuple[FloatArray, FloatArray]:
    d = np.asarray(delta_usd, dtype=np.float64)
    if d.ndim != 1:
        raise ValueError(f"delta_usd must be 1-D (one value per underlying), got shape {d.shape}")
    if not np.all(np.isfinite(d)):
        raise ValueError("delta_usd must be finite")
    s = _covariance(cov)
    if s.shape != (d.size, d.size):
        raise ValueError(f"cov must be {d.size} x {d.size} (one row per underlying), got {s.shape}")
    _check_horizon(horizon_days)
    return d, s * horizon_days


def delta_normal(
    delta_usd: npt.ArrayLike,
    cov: npt.ArrayLike,
    confidence: float = 0.99,
    es_confidence: float = 0.975,
    horizon_days: float = 1.0,
) -> VaR:
    """Delta-normal VaR and ES.

    Args:
        delta_usd: USD delta per underlying (P&L of a log-return r: delta_usd · r).
        cov: one-day covariance of the underlyings' log-returns.
        confidence: of the VaR.
        es_confidence: of the ES.
        horizon_days: the covariance is scaled by it.
    """
    d, s = _vectors(delta_usd, cov, horizon_days)
    sigma = math.sqrt(max(float(d @ s @ d), 0.0))
    moments = Moments(mean=0.0, std=sigma, skew=0.0, kurt=0.0)  # Cornish-Fisher's is exact
    return _parametric(moments, confidence, es_confidence, horizon_days, "delta-normal")


def _parametric(
    moments: Moments, confidence: float, es_confidence: float, horizon_days: float, method: str
) -> VaR:
    _check_levels(confidence, es_confidence)
    var, es = cornish_fisher(moments, confidence, es_confidence)
    return VaR(
        var=var,
        es=es,
        var_confidence=confidence,
        es_confidence=es_confidence,
        horizon_days=horizon_days,
        method=method,
    )


def delta_gamma_moments(
    delta_usd: npt.ArrayLike, gamma_usd: npt.ArrayLike, cov: npt.ArrayLike, horizon_days: float
) -> Moments:
    """The exact moments of P&L = d·r + ½ Σᵤ gᵤ rᵤ² for r ~ N(0, N Σ).

    With A = diag(g) and S = N Σ, the cumulants of this quadratic form are
    κ₁ = ½ tr(AS), κ₂ = d'Sd + ½ tr((AS)²), κ₃ = 3 d'SASd + tr((AS)³),
    κ₄ = 12 d'SASASd + 3 tr((AS)⁴).
    """
    d, s = _vectors(delta_usd, cov, horizon_days)
    g = np.asarray(gamma_usd, dtype=np.float64)
    if g.shape != d.shape:
        raise ValueError(f"gamma_usd must have the shape of delta_usd {d.shape}, got {g.shape}")
    if not np.all(np.isfinite(g)):
        raise ValueError("gamma_usd must be finite")
    m = g[:, None] * s  # A S
    m2 = m @ m
    sd = s @ d
    k1 = 0.5 * float(np.trace(m))
    k2 = float(d @ sd) + 0.5 * float(np.trace(m2))
    k3 = 3.0 * float(sd @ (g * sd)) + float(np.trace(m2 @ m))
    k4 = 12.0 * float(sd @ (g * (s @ (g * sd)))) + 3.0 * float(np.trace(m2 @ m2))
    if k2 <= 0.0:
        return Moments(mean=k1, std=0.0, skew=0.0, kurt=0.0)
    return Moments(mean=k1, std=math.sqrt(k2), skew=k3 / k2**1.5, kurt=k4 / (k2 * k2))


def cornish_fisher(
    moments: Moments, confidence: float, es_confidence: float
) -> tuple[float, float]:
    """VaR and ES (losses) of the distribution whose quantiles are Cornish-Fisher's expansion
    of ``moments``: at tail probability α, z = Φ⁻¹(α) and
    w(z) = z + (z² - 1) S/6 + (z³ - 3z) K/24 - (2z³ - 5z) S²/36; VaR = -(μ + σ w(z)).
    ES = -(μ + σ E[w(Z) | Z <= z]) with, integrating w against the normal density,
    E[w(Z) | Z <= z] = -φ(z)/α (1 + S z/6 + K (z² - 1)/24 - S² (2z² - 1)/36).
    """
    mu, sd, sk, ku = moments.mean, moments.std, moments.skew, moments.kurt
    a = 1.0 - confidence
    z = _N01.inv_cdf(a)
    w = z + (z * z - 1.0) * sk / 6.0 + (z**3 - 3.0 * z) * ku / 24.0
    w -= (2.0 * z**3 - 5.0 * z) * sk * sk / 36.0
    ae = 1.0 - es_confidence
    ze = _N01.inv_cdf(ae)
    tail = 1.0 + sk * ze / 6.0 + ku * (ze * ze - 1.0) / 24.0
    tail -= sk * sk * (2.0 * ze * ze - 1.0) / 36.0
    mean_w = -_N01.pdf(ze) / ae * tail
    return -(mu + sd * w), -(mu + sd * mean_w)


def delta_gamma(
    delta_usd: npt.ArrayLike,
    gamma_usd: npt.ArrayLike,
    cov: npt.ArrayLike,
    confidence: float = 0.99,
    es_confidence: float = 0.975,
    horizon_days: float = 1.0,
) -> VaR:
    """Delta-gamma VaR and ES with the Cornish-Fisher quantile.

    Args:
        delta_usd: USD delta per underlying.
        gamma_usd: per underlying, the second derivative of the P&L in the log-return r, USD
            per unit of r squared (the P&L has the term ½ gamma_usd r²): Γ·S² + Δ·S, i.e.
            100 x the cash gamma per 1 % move plus the USD delta.
        cov: one-day covariance of the underlyings' log-returns.
        confidence: of the VaR.
        es_confidence: of the ES.
        horizon_days: the covariance is scaled by it.
    """
    moments = delta_gamma_moments(delta_usd, gamma_usd, cov, horizon_days)
    return _parametric(
        moments, confidence, es_confidence, horizon_days, "delta-gamma Cornish-Fisher"
    )


def empirical(
    pnl: npt.ArrayLike,
    confidence: float = 0.99,
    es_confidence: float = 0.975,
    horizon_days: float = 1.0,
    method: str = "empirical",
) -> VaR:
    """VaR and ES of scenario P&Ls (USD), each scenario equally likely, no interpolation:
    the losses sorted ascending, k = ⌈n c⌉, VaR = the k-th; ES = (the losses above the k-th
    + (k - n c) x the k-th) / (n (1 - c)) (Acerbi and Tasche's discrete ES)."""
    _check_levels(confidence, es_confidence)
    p = np.asarray(pnl, dtype=np.float64)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"pnl must be 1-D and not empty, got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("pnl must be finite")
    loss = np.sort(-p)
    n = loss.size
    return VaR(
        var=float(loss[_rank(n, confidence) - 1]),
        es=_es(loss, es_confidence),
        var_confidence=confidence,
        es_confidence=es_confidence,
        horizon_days=horizon_days,
        method=method,
    )


def _rank(n: int, c: float) -> int:
    """k = ⌈n c⌉, without the rounding of n c pushing an exact integer up by one."""
    x = n * c
    k = math.ceil(x - 1e-9 * max(1.0, x))
    return min(max(k, 1), n)


def _es(loss: FloatArray, c: float) -> float:
    n = loss.size
    k = _rank(n, c)
    tail = float(loss[k:].sum()) + (k - n * c) * float(loss[k - 1])
    return tail / (n * (1.0 - c))


def historical(
    book: ScenarioBook,
    ret_window: npt.ArrayLike,
    dvol_window: npt.ArrayLike,
    confidence: float = 0.99,
    es_confidence: float = 0.975,
    horizon_days: float = 1.0,
) -> tuple[VaR, ScenarioPnL]:
    """Historical simulation: each recorded one-day move (a row of ``ret_window`` and
    ``dvol_window``, one column per underlying) applied to the book as it is now, scaled to the
    horizon by √N, revalued per distinct instrument (:func:`book_scenario_pnl`: full
    revaluation's figures to about 1e-13 relative); VaR and ES by :func:`empirical`."""
    res = historical_books(
        book, None, 1, ret_window, dvol_window, confidence, es_confidence, horizon_days
    )
    return res.books[0], _one_book(res.pnl)


def _one_book(res: BookScenarioPnL) -> ScenarioPnL:
    return ScenarioPnL(pnl=res.pnl[0], excluded=res.excluded)


def mc_draws(
    cov: npt.ArrayLike, n_scenarios: int, seed: int, horizon_days: float
) -> tuple[FloatArray, FloatArray]:
    """Monte Carlo's scenarios (returns, vol moves; (scenarios, U) each, C-contiguous):
    ``n_scenarios`` draws of N(0, N cov) from numpy's PCG64 seeded with ``seed``. What
    :func:`monte_carlo` and :func:`monte_carlo_books` revalue, and Monte Carlo attribution
    (:mod:`engine.risk.breakdown`) splits."""
    c = _covariance(cov)
    if c.shape[0] % 2:
        raise ValueError(f"cov must be 2U x 2U (returns, vol moves), got {c.shape}")
    if n_scenarios < 1:
        raise ValueError(f"n_scenarios must be >= 1, got {n_scenarios!r}")
    _check_horizon(horizon_days)
    u = c.shape[0] // 2
    rng = np.random.default_rng(seed)
    draws = rng.multivariate_normal(np.zeros(2 * u), c * horizon_days, n_scenarios, method="eigh")
    return np.ascontiguousarray(draws[:, :u]), np.ascontiguousarray(draws[:, u:])


def monte_carlo(
    book: ScenarioBook,
    cov: npt.ArrayLike,
    n_scenarios: int,
    seed: int,
    confidence: float = 0.99,
    es_confidence: float = 0.975,
    horizon_days: float = 1.0,
) -> tuple[VaR, ScenarioPnL]:
    """Monte Carlo: ``n_scenarios`` draws of N(0, N cov), seeded (numpy's PCG64 with ``seed``:
    the same seed gives the same scenarios and figures), each revalued per distinct instrument
    (:func:`book_scenario_pnl`: full revaluation's figures to about 1e-13 relative).

    Args:
        cov: one-day covariance, 2U x 2U, of the U underlyings' log-returns (first U rows)
            and of their relative vol moves (last U rows; zeros for no vol moves).
    """
    res = monte_carlo_books(
        book, None, 1, cov, n_scenarios, seed, confidence, es_confidence, horizon_days
    )
    return res.books[0], _one_book(res.pnl)


@dataclass(frozen=True, slots=True)
class BooksVaR:
    """VaR and ES of each book (in book order) and of all of them together, on one set of
    scenarios, with the P&L they come from."""

    books: list[VaR]
    total: VaR
    pnl: BookScenarioPnL


def monte_carlo_books(
    book: ScenarioBook,
    books: npt.ArrayLike | None,
    n_books: int,
    cov: npt.ArrayLike,
    n_scenarios: int,
    seed: int,
    confidence: float = 0.99,
    es_confidence: float = 0.975,
    horizon_days: float = 1.0,
) -> BooksVaR:
    """:func:`monte_carlo` of many books at once, on the same draws: each distinct instrument
    is revalued once per scenario whatever the number of books holding it, and each book's
    P&L is the sum of its weights in them times their value changes.

    Args:
        book: the positions of every book.
        books: each position's book, in [0, n_books) (None: all in book 0).
        n_books: the number of books.
        cov, n_scenarios, seed, confidence, es_confidence, horizon_days: as
            :func:`monte_carlo`'s.
    """
    _check_levels(confidence, es_confidence)
    ret, dvol = mc_draws(cov, n_scenarios, seed, horizon_days)
    res = book_scenario_pnl(book, ret, dvol, horizon_days, books, n_books)
    levels = (confidence, es_confidence, horizon_days, "monte carlo")
    return BooksVaR(
        books=[empirical(p, *levels) for p in res.pnl],
        total=empirical(res.total, *levels),
        pnl=res,
    )


def historical_books(
    book: ScenarioBook,
    books: npt.ArrayLike | None,
    n_books: int,
    ret_window: npt.ArrayLike,
    dvol_window: npt.ArrayLike,
    confidence: float = 0.99,
    es_confidence: float = 0.975,
    horizon_days: float = 1.0,
) -> BooksVaR:
    """:func:`historical` of many books at once, on the same window (as
    :func:`monte_carlo_books` is :func:`monte_carlo`'s): each distinct instrument revalued once
    per day of the window.

    Args:
        book, books, n_books: as :func:`monte_carlo_books`'s.
        ret_window, dvol_window, confidence, es_confidence, horizon_days: as
            :func:`historical`'s.
    """
    _check_levels(confidence, es_confidence)
    _check_horizon(horizon_days)
    scale = math.sqrt(horizon_days)
    ret = np.asarray(ret_window, dtype=np.float64) * scale
    dvol = np.asarray(dvol_window, dtype=np.float64) * scale
    res = book_scenario_pnl(book, ret, dvol, horizon_days, books, n_books)
    levels = (confidence, es_confidence, horizon_days, "historical")
    return BooksVaR(
        books=[empirical(p, *levels) for p in res.pnl],
        total=empirical(res.total, *levels),
        pnl=res,
    )
