"""American options: numba kernels for price, Greeks and implied volatility.

The method is Andersen, Lake and Offengenden's fixed-point scheme ("High-performance American
option pricing", Journal of Computational Finance 20(1), 2016), written from the paper: the
exercise boundary B(τ) of a put (τ: time left to expiry) solves the value-matching equation

    B(τ) = K e^{-(r-q)τ} N(τ, B) / D(τ, B)                                     (FP-B)
    N = Φ(d-(τ, B/K)) + r ∫_0^τ e^{ru} Φ(d-(τ-u, B(τ)/B(u))) du
    D = Φ(d+(τ, B/K)) + q ∫_0^τ e^{qu} Φ(d+(τ-u, B(τ)/B(u))) du

with d±(t, z) = (ln z + (r - q)t)/(σ√t) ± σ√t/2, and the price is the European one plus the
early-exercise premium

    ∫_0^T [r K e^{-rt} Φ(-d-(t, S/B(T-t))) - q S e^{-qt} Φ(-d+(t, S/B(T-t)))] dt.

Choices (docs/american.md says why):

- B is held on Chebyshev-Lobatto nodes in ξ = √(τ/T) as H(ξ) = ln(B/X)², X = B(0+) =
  K min(1, r/q), and interpolated by its Chebyshev series (Clenshaw).
- Both integrals are taken in θ with u = τ sin²θ (t = T sin²θ for the premium): the
  √-behaviour of B near expiry (and the premium's 1/√t layer) become smooth in θ, so
  Gauss-Legendre converges geometrically. The premium of the accurate scheme uses tanh-sinh
  nodes in θ, which resolve the layer near t = 0 when S is just above the boundary.
- The first guess of B is Li's QD+ approximation (2005), solved by Newton at each node; then
  ``jn_steps`` Jacobi-Newton steps (the paper's FP-B') and the rest plain fixed-point steps.
- The value-matching form above, not the smooth-pasting one (N and D with φ/(σ√(τ-u))
  kernels, the paper's FP-A): at low vol and a high rate (σ = 6 %, r - q = 7 %, T = 2 years)
  the smooth-pasting iteration is no contraction and diverges from any start, which priced
  such puts at intrinsic or 40 % off (docs/american.md, "Low vol, high rate").
- Calls by McDonald-Schroder symmetry, C(S, K, r, q) = P(K, S, q, r); options on futures are
  those on spot with q = r. A put with r <= 0 and q >= r (a call with q <= 0 and r >= q) is
  never exercised early: the European price. The double-boundary case (put: q < r < 0; call:
  r < q < 0) is priced on a binomial tree with the European control variate (documented
  accuracy ~1e-5 relative, not the scheme's).

Greeks: delta and gamma are analytic (the derivatives of the European part plus the premium
integral's, the boundary held: it does not depend on S); theta is from the pricing PDE,
θ = rV - (r-q)SΔ - σ²S²Γ/2 (0 in the exercise region); vega, rho, vanna, volga and charm are
central finite differences of the same scheme's price (and analytic delta), which is a smooth
function of its parameters (fixed nodes and iteration counts).

The fast scheme solves the boundary over T_b, the first power of 1.01 at or above T, and
reads it over [0, T]
(ξ = √(τ/T_b)); it does not depend on S, and, solved for a strike of 1, it scales with the
strike (H is dimensionless). So the price is a function of (S, K, T, r, q, σ) alone, whatever
was solved before, and a row's five boundaries (the price's and its Greeks' bumps) can be
kept in a memo row (:func:`memo_width`) and read back while T stays in (T_b/1.01, T_b] and
r, q and σ do not change: a move of the spot, or of the clock within 1 % of the time left,
then costs the premium integrals alone, the same figures to the bit.

Boundary tables (:func:`boundary_tables`, :func:`_table_boundary`): the boundary is a smooth
function of the vol, so a solver with tables solves it at PANEL_NODES vols of the vol's octave
(Chebyshev-Lobatto in log σ) and interpolates it at the row's vol, the table kept for the
other rows of the same T_b, r, q, tier and octave: a chain's options of one expiry share a
few. The interpolant is within ~4e-9 of the price scale of the boundary solved at the row's
own vol, and every figure is still a function of the row's inputs alone (docs/american.md).

Kernels follow engine.kernels: explicit signatures, ``out`` rows in the order of
:data:`engine.kernels.GREEK_FIELDS`, a per-row ``status`` (engine.status), never raise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt
from numba import boolean, float64, int8, int64, njit, prange, types, void
from numba.core.base import BaseContext
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array
from numba.np.ufunc.parallel import get_thread_id

from engine.european_kernels import (
    BAD_INPUT,
    BAD_VOL,
    EXPIRED,
    NO_CONVERGENCE,
    OK,
    PRICE_ABOVE_MAX,
    PRICE_BELOW_INTRINSIC,
    _gbs_status,
    _iv_row,
)

__all__ = [
    "ACCURATE",
    "FAST",
    "NO_TABLES",
    "REFERENCE",
    "Scheme",
    "american_iv_kernel",
    "american_kernel",
    "american_parallel_kernel",
    "american_price_kernel",
    "binomial_price_kernel",
    "boundary_tables",
    "memo_width",
    "one_tier",
]

F64 = npt.NDArray[np.float64]
F64_2D = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]
BoolArray = npt.NDArray[np.bool_]

_INV_SQRT2 = 0.7071067811865475244
_INV_SQRT_2PI = 0.3989422804014326779

_F = TypeVar("_F", bound=Callable[..., object])
_UNCOUNTED: dict[str, Any] = {
    "cache": True, "nogil": True, "error_model": "numpy", "_nrt": False
}  # fmt: skip


def _uncounted(fn: _F) -> _F:
    """``njit`` without numba's runtime (its reference counting: numba's ``_nrt`` option).

    The solver's functions take a :class:`Solver` by value: the scheme's 50 arrays. With the
    runtime, numba counts a reference to each array on every call and every field read,
    although the kernels' arrays hold none (:func:`_borrowed`): about 0.9 µs of a 1.9 µs
    price read from a boundary table (docs/american.md, Speed). Functions compiled without
    it, and the functions they call (numba compiles a callee with its caller's setting),
    cannot allocate: they work in the solver's scratch."""
    return cast(_F, njit(**_UNCOUNTED)(fn))


class Tier(NamedTuple):
    """Nodes and steps of one fixed-point scheme (built by :func:`make_tier`); a
    :class:`Scheme` picks one tier per row.

    ``cheb[j, k]`` = cos(jkπ/n) over the n + 1 Chebyshev-Lobatto nodes, ``xi[k]`` =
    (1 + cos(kπ/n))/2 the nodes in ξ = √(τ/T); ``fp_*``: sin θ, cos θ and weight of the
    boundary integrals' Gauss-Legendre rule on [0, π/2]; ``pr_*``: the premium's rule;
    ``qd_steps``: Newton steps of QD+ per node at most; ``greek_steps``: Jacobi-Newton steps
    that re-solve a bumped boundary from the unbumped one (0: each bump solved from QD+);
    ``fp_interp[k, j m + i]``: the weight of H at node k in the Chebyshev interpolant of H at
    u = τ_j sin²θ_i (z = 2ξ_j sinθ_i - 1), so that one pass over the nodes gives H at every
    point of every boundary integral; ``fp_tol`` > 0: the iteration stops once no node moves
    by more than that (relative), within ``fp_steps`` (0: always ``fp_steps``).
    """

    cheb: F64
    xi: F64
    fp_sin: F64
    fp_cos: F64
    fp_w: F64
    pr_sin: F64
    pr_cos: F64
    pr_w: F64
    jn_steps: int
    fp_steps: int
    qd_steps: int
    greek_steps: int
    fp_interp: F64
    fp_tol: float


N_TIERS = 4
"""Tiers in every :class:`Scheme` (one numba type for all schemes)."""


class Scheme(NamedTuple):
    """An accuracy setting: :data:`N_TIERS` tiers and the rule that picks one per row.

    A row whose put (the call's symmetric put) has rate x years ``r T <= rt_max[i]`` and
    ``ω = 2 (r - q)/σ² <= w_max[i]`` takes the first such tier ``i`` (the last tier's bounds
    are infinite); a row whose early-exercise premium is provably below ``euro_tol`` times
    its spot and 1e-7 times its European price is priced European (:func:`_premium_bound`;
    0: never). ``log_ratio`` > 0: the boundary is solved over T_b, the first power of
    e^log_ratio at or above T (:func:`_boundary_years`); 0: over T itself.
    """

    tiers: tuple[Tier, Tier, Tier, Tier]
    rt_max: F64
    w_max: F64
    euro_tol: float
    log_ratio: float


class Solver(NamedTuple):
    """A scheme and the scratch a row is solved in (:func:`_scratch`): what every price of a
    row takes.

    Attributes:
        scheme: the accuracy setting.
        coef: room for the largest tier's Chebyshev coefficients.
        work: room for :func:`_put_boundary`'s work.
        tables: boundary tables (:func:`boundary_tables`) the fast scheme's boundaries are
            interpolated from (:func:`_table_boundary`); empty: each solved for its own vol.
    """

    scheme: Scheme
    coef: F64
    work: F64
    tables: F64


_A1 = types.Array(float64, 1, "C")
# numba's type constructors carry no annotations
_TIER = types.NamedTuple(  # type: ignore[no-untyped-call]
    [
        types.Array(float64, 2, "C"),
        _A1,
        _A1,
        _A1,
        _A1,
        _A1,
        _A1,
        _A1,
        int64,
        int64,
        int64,
        int64,
        types.Array(float64, 2, "C"),
        float64,
    ],
    Tier,
)
_TIERS = types.UniTuple(_TIER, N_TIERS)  # type: ignore[no-untyped-call]  # as above
_SCHEME = types.NamedTuple([_TIERS, _A1, _A1, float64, float64], Scheme)  # type: ignore[no-untyped-call]


def _legendre_theta(points: int) -> tuple[F64, F64, F64]:
    x, w = np.polynomial.legendre.leggauss(points)
    theta = 0.25 * math.pi * (1.0 + x)
    return np.sin(theta), np.cos(theta), 0.25 * math.pi * w


def _tanh_sinh_theta(step: float, half_width: int) -> tuple[F64, F64, F64]:
    """Tanh-sinh nodes on [0, π/2], each end's distance formed without cancellation."""
    t = step * np.arange(-half_width, half_width + 1)
    u = 0.5 * math.pi * np.sinh(t)
    lower = 0.5 * math.pi / (1.0 + np.exp(-2.0 * u))  # θ = π/4 (1 + tanh u)
    upper = 0.5 * math.pi / (1.0 + np.exp(2.0 * u))  # π/2 - θ
    w = 0.25 * math.pi * step * 0.5 * math.pi * np.cosh(t) / np.cosh(u) ** 2
    keep = (lower > 0.0) & (upper > 0.0) & (w > 1e-30)
    return np.sin(lower[keep]), np.sin(upper[keep]), w[keep]


def make_tier(
    nodes: int,
    fp_points: int,
    jn_steps: int,
    fp_steps: int,
    premium_points: int = 0,
    tanh_sinh_step: float = 0.0,
    qd_steps: int = 16,
    greek_steps: int = 0,
    fp_tol: float = 0.0,
) -> Tier:
    """A tier of ``nodes`` Chebyshev intervals, ``fp_points`` Gauss-Legendre points per
    boundary integral, ``fp_steps`` iterations of which the first ``jn_steps`` Jacobi-Newton,
    and the premium on ``premium_points`` Gauss-Legendre points or, with ``tanh_sinh_step``
    > 0, on tanh-sinh nodes of that step out to where the weights vanish. QD+ takes at most
    ``qd_steps`` Newton steps per node; ``greek_steps`` > 0 solves the bumped prices of the
    Greeks by that many Jacobi-Newton steps from the unbumped boundary; ``fp_tol`` > 0 stops
    the iteration early once no node moves by more than that, relative."""
    k = np.arange(nodes + 1)
    cheb = np.cos(np.outer(k, k) * math.pi / nodes)
    xi = 0.5 * (1.0 + np.cos(k * math.pi / nodes))
    fs, fc, fw = _legendre_theta(fp_points)
    if tanh_sinh_step > 0.0:
        ps, pc, pw = _tanh_sinh_theta(tanh_sinh_step, math.ceil(3.2 / tanh_sinh_step))
    else:
        ps, pc, pw = _legendre_theta(premium_points)
    # coefficients of the series through the node values: coef = C h (_cheb_coefficients)
    c = cheb * (2.0 / nodes)
    c[:, 0] *= 0.5
    c[:, nodes] *= 0.5
    c[0, :] *= 0.5
    c[nodes, :] *= 0.5
    z = (2.0 * np.outer(xi[:nodes], fs) - 1.0).ravel()  # node j, point i at j m + i
    t_z = np.cos(np.outer(np.arccos(np.clip(z, -1.0, 1.0)), k))  # T_k(z)
    interp = np.ascontiguousarray((t_z @ c).T)
    return Tier(
        cheb, xi, fs, fc, fw, ps, pc, pw, jn_steps, fp_steps, qd_steps, greek_steps, interp,
        fp_tol,
    )  # fmt: skip


def tiered(
    tiers: Sequence[tuple[Tier, float, float]], euro_tol: float = 0.0, boundary_ratio: float = 1.0
) -> Scheme:
    """A scheme of (tier, rt_max, w_max) in the order they are tried (:class:`Scheme`), the
    last repeated up to :data:`N_TIERS` with infinite bounds; boundaries solved over T_b, the
    first power of ``boundary_ratio`` at or above T (1: over T)."""
    if not 1 <= len(tiers) <= N_TIERS:
        raise ValueError(f"1 to {N_TIERS} tiers, got {len(tiers)}")
    padded = [*tiers] + [tiers[-1]] * (N_TIERS - len(tiers))
    rt_max = np.array([x[1] for x in padded], dtype=np.float64)
    w_max = np.array([x[2] for x in padded], dtype=np.float64)
    rt_max[len(tiers) - 1 :] = np.inf
    w_max[len(tiers) - 1 :] = np.inf
    return Scheme(tuple(x[0] for x in padded), rt_max, w_max, euro_tol, math.log(boundary_ratio))  # type: ignore[arg-type]  # N_TIERS of them


def one_tier(tier: Tier, euro_tol: float = 0.0) -> Scheme:
    """A scheme of one tier (:func:`make_tier`) for every row."""
    return tiered([(tier, math.inf, math.inf)], euro_tol)


FAST = tiered(
    [
        (make_tier(5, 5, jn_steps=0, fp_steps=2, premium_points=12), 0.002, math.inf),
        (make_tier(6, 6, jn_steps=0, fp_steps=4, premium_points=16), 0.024, 8.0),
        (make_tier(8, 8, jn_steps=0, fp_steps=5, premium_points=16), math.inf, 2.0),
        (make_tier(16, 12, jn_steps=0, fp_steps=16, premium_points=64, fp_tol=1e-7),
         math.inf, math.inf),
    ],
    euro_tol=1e-9,
    boundary_ratio=1.01,
)  # fmt: skip
"""1e-5 relative or 1e-7 per unit of spot (docs/american.md, accuracy table), by tiers of
(nodes, points, iterations, premium points) on the put that prices the row (a call's
symmetric put): r T <= 0.002: (5, 5, 2, 12); r T <= 0.024 and ω = 2 (r - q)/σ² <= 8:
(6, 6, 4, 16); ω <= 2: (8, 8, 5, 16); the rest, the low-vol, high-rate regime: (16, 12, up to
16, stopped once no node moves by 1e-7, 64). A premium provably below 1e-9 of spot and 1e-7
of the European price is left out (the European price). Boundaries over T_b, the first power
of 1.01 at or above T (a row's memo is read back while T stays in (T_b/1.01, T_b]). Each tier
was sized within 0.45 of its target on 13,000 rows of grid() and low_vol_grid()
(bench/american.py) against ACCURATE and REFERENCE; on two other seeds of 13,000 rows each is
within 0.83 of it (docs/american.md)."""
ACCURATE = one_tier(make_tier(32, 48, jn_steps=1, fp_steps=30, tanh_sinh_step=0.05))
"""1e-8 relative or 1e-10 per unit of spot (docs/american.md, accuracy table)."""
REFERENCE = one_tier(make_tier(64, 128, jn_steps=40, fp_steps=40, tanh_sinh_step=0.025))
"""The tests' and benchmark's reference: converged to about 1e-12 relative where the problem
is well conditioned (docs/american.md)."""


MEMO_SLOTS = 5
"""Boundaries a row keeps in its memo: the price's, vol up, vol down, rate up, rate down."""
_MEMO_KEY = 6  # the inputs a row's boundaries are solved for: T_b, r, q, σ, black, is_call
_SLOT_HEAD = 4  # per slot: written (1.0), tier, iterations, X for a strike of 1


def memo_width(scheme: Scheme) -> int:
    """Floats in one row's memo under ``scheme`` (:func:`_american_row`)."""
    nodes = max(int(t.xi.shape[0]) for t in scheme.tiers)
    return _MEMO_KEY + MEMO_SLOTS * (_SLOT_HEAD + nodes)


PANEL_NODES = 8
"""Vols a boundary table solves per panel of vol: an octave [2^j, 2^(j+1)] (module
docstring, :func:`_table_boundary`)."""
TABLE_SETS = 256
TABLE_WAYS = 4
"""A thread's boundary tables: TABLE_SETS sets of TABLE_WAYS tables, each key hashed to a set
and the set's oldest table replaced when all are taken."""
_TABLE_HEAD = 7  # per table: T_b, r, q, tier, panel; written (1.0); X for a strike of 1


NO_TABLES = np.empty((1, 0))
"""The kernels' ``tables`` argument for none: each boundary solved at its row's own vol."""


def boundary_tables(scheme: Scheme, threads: int) -> npt.NDArray[np.float64]:
    """Empty boundary tables under ``scheme`` for ``threads`` threads, a row each
    (:func:`_table_boundary`; a thread uses its own row alone)."""
    nodes = max(int(t.xi.shape[0]) for t in scheme.tiers)
    width = _TABLE_HEAD + PANEL_NODES * nodes
    tables = np.full((threads, TABLE_SETS * (TABLE_WAYS * width + 1)), math.nan)
    tables[:, :TABLE_SETS] = 0.0  # each set's next table to replace
    return tables


# ------------------------------------------------------------------------------ small pieces


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _ncdf(x: float) -> float:
    return 0.5 * math.erfc(-x * _INV_SQRT2)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _npdf(x: float) -> float:
    return _INV_SQRT_2PI * math.exp(-0.5 * x * x)


@njit(cache=True, nogil=True, error_model="numpy")
def _european(
    is_call: bool, s: float, k: float, t: float, r: float, q: float, v: float, greeks: bool = True
) -> tuple[float, float, float, float]:
    """European price, delta, gamma and speed dΓ/dS (generalised BSM); ``greeks`` False:
    the price alone (the same to the bit), the rest NaN."""
    vs = v * math.sqrt(t)
    d1 = (math.log(s / k) + (r - q) * t) / vs + 0.5 * vs
    d2 = d1 - vs
    w = 1.0 if is_call else -1.0
    dfq = math.exp(-q * t)
    n1 = _ncdf(w * d1)
    price = max(w * (s * dfq * n1 - k * math.exp(-r * t) * _ncdf(w * d2)), 0.0)
    if not greeks:
        return price, math.nan, math.nan, math.nan
    gamma = dfq * _npdf(d1) / (s * vs)
    return price, w * dfq * n1, gamma, -gamma / s * (1.0 + d1 / vs)


@njit(cache=True, nogil=True, error_model="numpy")
def _cheb_coefficients(cheb: F64, h: F64, coef: F64) -> None:
    """Coefficients of the Chebyshev series through h[k] at z_k = cos(kπ/n), first and last
    halved so that H(z) = Σ_j coef[j] T_j(z)."""
    n = h.shape[0] - 1
    for j in range(n + 1):
        acc = 0.5 * (h[0] + h[n] * cheb[j, n])
        for k in range(1, n):
            acc += h[k] * cheb[j, k]
        coef[j] = acc * 2.0 / n
    coef[0] *= 0.5
    coef[n] *= 0.5


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _sqrt_h(coef: F64, z: float) -> float:
    """√H(z) by Clenshaw's recurrence (H clipped at 0): -ln(B/X) at ξ = (1 + z)/2."""
    b1 = 0.0
    b2 = 0.0
    z2 = 2.0 * z
    for j in range(coef.shape[0] - 1, 0, -1):
        b1, b2 = coef[j] + z2 * b1 - b2, b1
    return math.sqrt(max(coef[0] + z * b1 - b2, 0.0))


# --------------------------------------------------------------------- first guess: QD+ (Li)


@njit(cache=True, nogil=True, error_model="numpy")
def _qd_plus(
    k: float, tau: float, r: float, q: float, v: float, xmax: float, start: float, steps: int
) -> float:
    """Li's QD+ exercise boundary of a put at τ (r > 0), by at most ``steps`` Newton steps from
    ``start``, stopped once a step is below 1e-6 relative (Newton converges quadratically:
    the root taken is then within ~1e-12 of QD+'s)."""
    v2 = v * v
    sd = v * math.sqrt(tau)
    dr = math.exp(-r * tau)
    dq = math.exp(-q * tau)
    h = 1.0 - dr
    omega = 2.0 * (r - q) / v2
    root = math.sqrt((omega - 1.0) ** 2 + 8.0 * r / (v2 * h))
    lam = 0.5 * (1.0 - omega - root)
    lam_dh = 2.0 * r / (v2 * h * h * root)
    alpha = 2.0 * dr * r / (v2 * (2.0 * lam + omega - 1.0))
    beta = alpha * (1.0 / h + lam_dh / (2.0 * lam + omega - 1.0)) - lam
    c = alpha / (r * dr)
    x = start
    floor = 1e-6 * xmax
    for _ in range(steps):
        dp = (math.log(x * dq / (k * dr))) / sd + 0.5 * sd
        dm = dp - sd
        n_dp = _ncdf(-dp)
        pdf = _npdf(dp)
        euro = dr * k * _ncdf(-dm) - x * dq * n_dp
        theta = r * k * dr * _ncdf(-dm) - q * x * dq * n_dp - 0.5 * v2 * x * dq * pdf / sd
        f = (1.0 - dq * n_dp) * x - beta * (k - x - euro) + c * theta
        dtheta = -dq * (pdf * ((r - q) / sd - dm / (2.0 * tau)) + q * n_dp)
        f1 = (1.0 - dq * n_dp) * (1.0 + beta) + dq * pdf / sd + c * dtheta
        if not (f1 > 0.0 and math.isfinite(f)):
            break
        step = f / f1
        x_new = min(max(x - step, floor), xmax)
        if abs(x_new - x) <= 1e-6 * x:  # QD+ is a first guess; this x_new is within ~1e-12
            return x_new
        x = x_new
    return x


# ------------------------------------------------------------------- the fixed-point scheme


_TAB = 5  # per node and point of the boundary integrals: see _boundary_tables


@njit(cache=True, nogil=True, error_model="numpy")
def _interpolate_root_h(interp: F64, h: F64, root_h: F64) -> None:
    """√H (= -ln(B/X)) at every point of every boundary integral from H at the nodes: one
    pass per node over independent sums (vectorisable without reassociation)."""
    for j in range(root_h.shape[0]):
        root_h[j] = 0.0
    for k in range(h.shape[0]):
        hk = h[k]
        row = interp[k]
        for p in range(root_h.shape[0]):
            root_h[p] += row[p] * hk
    for p in range(root_h.shape[0]):
        root_h[p] = math.sqrt(max(root_h[p], 0.0))


@njit(cache=True, nogil=True, error_model="numpy")
def _boundary_tables(t: float, r: float, q: float, v: float, scheme: Tier, tab: F64) -> None:
    """What every iteration shares at node j, point i (u = τ_j sin²θ_i): in ``tab[(j m + i)
    * 5 :]``, 1/σ√(τ-u), the rest of d+ beyond ln(b/B(u))/σ√(τ-u) ((r-q)(τ-u)/σ√(τ-u) +
    σ√(τ-u)/2), σ√(τ-u), and the weights r e^{ru} du and q e^{qu} du of the two integrals.
    Only the boundary changes between iterations, so these exp are taken once a solve."""
    m = scheme.fp_w.shape[0]
    for j in range(scheme.xi.shape[0] - 1):
        tau = t * scheme.xi[j] ** 2
        for i in range(m):
            sn = scheme.fp_sin[i]
            cs = scheme.fp_cos[i]
            u = tau * sn * sn
            sd_u = v * math.sqrt(tau) * cs
            du = 2.0 * tau * scheme.fp_w[i] * sn * cs  # du = 2τ sinθ cosθ dθ
            at = (j * m + i) * _TAB
            tab[at] = 1.0 / sd_u
            tab[at + 1] = (r - q) * tau * cs * cs / sd_u + 0.5 * sd_u
            tab[at + 2] = sd_u
            tab[at + 3] = r * math.exp(r * u) * du
            tab[at + 4] = q * math.exp(q * u) * du


@njit(cache=True, nogil=True, error_model="numpy")
def _boundary_step(
    k: float,
    tau: float,
    r: float,
    q: float,
    v: float,
    b: float,
    log_bx: float,
    scheme: Tier,
    root_h: F64,
    tab: F64,
    newton: bool,
) -> float:
    """One fixed-point (or Jacobi-Newton) update of B at τ from its current value b
    (ln(b/X) = log_bx) and the boundary elsewhere, in the value-matching form (module
    docstring); the Newton slope holds the integrals (the paper's FP-B'). ``root_h[i]``:
    -ln(B(u_i)/X) at this node's points; ``tab``: its rows of :func:`_boundary_tables`."""
    sd = v * math.sqrt(tau)
    dp = (math.log(b / k) + (r - q) * tau) / sd + 0.5 * sd
    dm = dp - sd
    i_n = 0.0
    i_d = 0.0
    for i in range(scheme.fp_w.shape[0]):
        at = i * _TAB
        log_z = log_bx + root_h[i]  # ln(b / B(u))
        d_p = log_z * tab[at] + tab[at + 1]
        i_n += tab[at + 3] * _ncdf(d_p - tab[at + 2])
        i_d += tab[at + 4] * _ncdf(d_p)
    n_val = _ncdf(dm) + i_n
    d_val = _ncdf(dp) + i_d
    if not d_val > 0.0:  # b has run to 0 (r -> 0: never exercised), where N = D = 0
        return 0.0
    alpha = k * math.exp(-(r - q) * tau)
    f = alpha * n_val / d_val
    if newton:
        n_db = _npdf(dm) / (b * sd)
        d_db = _npdf(dp) / (b * sd)
        f_db = alpha * (n_db / d_val - n_val * d_db / (d_val * d_val))
        b_new = b + (f - b) / (1.0 - f_db)
        if b_new > 0.0 and math.isfinite(b_new):
            return b_new
    return f


@_uncounted
def _put_boundary(
    k: float,
    t: float,
    r: float,
    q: float,
    v: float,
    scheme: Tier,
    coef: F64,
    work: F64,
    warm: bool,
    fixed_steps: int,
) -> tuple[float, int]:
    """Fill ``coef`` with the Chebyshev series of H = ln(B/X)² over ξ = √(τ/T) for a put with
    r > 0 and q >= r or any q of the one-boundary case; returns X and the iterations taken.

    Cold (``warm`` False): QD+ then the scheme's steps (``fixed_steps`` >= 0: exactly that
    many, else up to ``fp_steps``, fewer once the boundary moves by less than ``fp_tol``),
    and the nodes' B saved in ``work``. Warm (the last solve's ``work`` is this row's, a bumped
    price or the next implied-vol iterate): with ``scheme.greek_steps`` > 0, that many
    Jacobi-Newton steps from the saved B; else the cold solve with QD+'s Newton started at
    each node from the saved QD+ root there (if the last solve had as many nodes), which gives
    QD+ to ~1e-12 in 1-2 steps instead of ~5."""
    n = scheme.xi.shape[0] - 1
    xmax = k * min(1.0, r / q) if q > 0.0 else k
    b = work[: n + 1]
    b_new = work[n + 1 : 2 * n + 2]
    h = work[2 * n + 2 : 3 * n + 3]
    saved = work[3 * n + 3 : 4 * n + 4]
    qd_root = work[4 * n + 4 : 5 * n + 5]  # QD+ at the nodes; [n]: the node count
    m = scheme.fp_w.shape[0]
    root_h = work[5 * n + 5 : 5 * n + 5 + n * m]
    tab = work[5 * n + 5 + n * m :]
    row = m * _TAB
    b[n] = xmax
    if warm and scheme.greek_steps > 0:
        for j in range(n):
            b[j] = min(saved[j], xmax)
        steps, jn_steps = scheme.greek_steps, scheme.greek_steps
    else:
        # Newton at each node from the last solve's QD+ root there when ``warm`` and it had
        # this many nodes (a bumped price, the next implied-vol iterate: 1-2 steps), else from
        # the root at the next shorter τ
        reuse = warm and qd_root[n] == n
        for j in range(n - 1, -1, -1):  # τ increasing
            if reuse:
                start = min(qd_root[j], xmax)
            elif j < n - 1:
                # -ln(B/X) is about linear in ξ near expiry: extrapolated from the two
                # shorter τ (the root at τ = 0 is X)
                x1, x2 = scheme.xi[j + 1], scheme.xi[j + 2]
                l1, l2 = math.log(b[j + 1] / xmax), math.log(b[j + 2] / xmax)
                start = xmax * math.exp(min(l1 + (l1 - l2) * (scheme.xi[j] - x1) / (x1 - x2), 0.0))
            else:
                start = b[j + 1]
            b[j] = _qd_plus(k, t * scheme.xi[j] ** 2, r, q, v, xmax, start, scheme.qd_steps)
            qd_root[j] = b[j]
        qd_root[n] = n
        steps, jn_steps = scheme.fp_steps, scheme.jn_steps
        if fixed_steps >= 0:
            steps = fixed_steps
    tol = scheme.fp_tol if fixed_steps < 0 and not (warm and scheme.greek_steps > 0) else 0.0
    for j in range(n + 1):
        h[j] = math.log(b[j] / xmax) ** 2
    if steps > 0:
        _boundary_tables(t, r, q, v, scheme, tab)
    taken = 0
    for step in range(steps):
        taken += 1
        newton = step < jn_steps
        _interpolate_root_h(scheme.fp_interp, h, root_h)
        for j in range(n):
            tau = t * scheme.xi[j] ** 2
            log_bx = math.log(b[j] / xmax)
            b_new[j] = _boundary_step(
                k, tau, r, q, v, b[j], log_bx, scheme, root_h[j * m : (j + 1) * m],
                tab[j * row : (j + 1) * row], newton,
            )  # fmt: skip
        moved = 0.0
        for j in range(n):
            bj = min(max(b_new[j], 1e-300), xmax)
            moved = max(moved, abs(bj - b[j]) / b[j])
            b[j] = bj
            h[j] = math.log(bj / xmax) ** 2
        if moved <= tol:
            break
    _cheb_coefficients(scheme.cheb, h, coef)
    if not (warm and scheme.greek_steps > 0):
        for j in range(b.shape[0]):
            saved[j] = b[j]
    return xmax, taken


@_uncounted
def _put_premium(
    s: float,
    k: float,
    t: float,
    r: float,
    q: float,
    v: float,
    scheme: Tier,
    coef: F64,
    xmax: float,
    scale: float,
    greeks: bool,
) -> tuple[float, float, float, float, bool]:
    """Early-exercise premium of a put and its first three derivatives in S (``greeks``
    False: 0), the boundary (``coef``, X = ``xmax``, solved over T_b = T/``scale``²) held;
    and whether S is in the exercise region (S <= B(T))."""
    log_sx = math.log(s / xmax)
    exercise = log_sx + _sqrt_h(coef, 2.0 * scale - 1.0) <= 0.0
    prem = 0.0
    d_prem = 0.0
    g_prem = 0.0
    s_prem = 0.0
    sqrt_t = math.sqrt(t)
    for j in range(scheme.pr_w.shape[0]):
        sn = scheme.pr_sin[j]
        cs = scheme.pr_cos[j]
        tt = t * sn * sn
        sd = v * sqrt_t * sn
        log_sb = log_sx + _sqrt_h(coef, 2.0 * scale * cs - 1.0)  # ln(S / B(T - t))
        dp = (log_sb + (r - q) * tt) / sd + 0.5 * sd
        dm = dp - sd
        er = math.exp(-r * tt)
        eq = math.exp(-q * tt)
        w = scheme.pr_w[j] * 2.0 * t * sn * cs  # dt = 2T sinθ cosθ dθ
        n_mp = _ncdf(-dp)
        prem += w * (r * k * er * _ncdf(-dm) - q * s * eq * n_mp)
        if not greeks:
            continue
        # K/B(T-t) = (K/S) e^{ln(S/B)}
        pdf = _npdf(dp)
        kb = k / s * math.exp(log_sb)
        lead = eq * pdf * (q - r * kb) / sd
        d_prem += w * (lead - q * eq * n_mp)
        g = (q * eq * pdf - lead * dp) / sd  # S times the integrand's second derivative
        g_prem += w * g / s
        s_prem += w * ((lead * (dp * dp - 1.0) - q * eq * pdf * dp) / (sd * sd) - g) / (s * s)
    return prem, d_prem, g_prem, s_prem, exercise


# ---------------------------------------------------------------------- binomial (fallback)


@njit(cache=True, nogil=True, error_model="numpy")
def _binomial(
    is_call: bool,
    s: float,
    k: float,
    t: float,
    r: float,
    q: float,
    v: float,
    steps: int,
    values: F64,
    american: bool = True,
) -> tuple[float, float, float]:
    """Cox-Ross-Rubinstein tree, with exercise at every step when ``american`` (else the same
    tree without it: the control variate of the American one): price, delta, gamma;
    ``values``: room for ``steps`` + 1 floats."""
    dt = t / steps
    up = math.exp(v * math.sqrt(dt))
    down = 1.0 / up
    p = (math.exp((r - q) * dt) - down) / (up - down)
    disc = math.exp(-r * dt)
    w = 1.0 if is_call else -1.0
    for j in range(steps + 1):
        values[j] = max(w * (s * up ** (2 * j - steps) - k), 0.0)
    exercise = 1.0 if american else 0.0  # a product, not a branch: the loop stays as fast
    d1 = g = 0.0
    for n in range(steps - 1, -1, -1):
        for j in range(n + 1):
            cont = disc * (p * values[j + 1] + (1.0 - p) * values[j])  # >= 0
            values[j] = max(cont, exercise * w * (s * up ** (2 * j - n) - k))
        if n == 2:
            s_dd, s_mid, s_uu = s * down * down, s, s * up * up
            g = (
                (values[2] - values[1]) / (s_uu - s_mid) - (values[1] - values[0]) / (s_mid - s_dd)
            ) / (0.5 * (s_uu - s_dd))
        if n == 1:
            d1 = (values[1] - values[0]) / (s * up - s * down)
    return values[0], d1, g


# --------------------------------------------------------------------- price and Greeks


TREE_STEPS = 1000
"""Steps of the tree that prices a put with q < r < 0 (two boundaries), with the European
price as its control variate."""

_NEGLIGIBLE_RT = 1e-14
"""A put's (a call's symmetric put's) rate x years below which its early-exercise premium,
at most the interest on the strike, is below a rounding of its price: priced European."""


@njit(cache=True, nogil=True, error_model="numpy")
def _premium_bound(s: float, k: float, t: float, r: float, q: float, v: float) -> float:
    """An upper bound of a put's early-exercise premium (r > 0), from the premium integral
    with B <= X = K min(1, r/q) and its q-term (>= 0) dropped:

        premium <= K (1 - e^{-rT}) max_{0 < t <= T} Φ(-d-(t, S/X)),

    -d-(t, S/X) = (c t - a)/(σ√t), a = ln(S/X), c = σ²/2 - (r - q), increasing in t up to
    t = a/(-c) when c < 0 (its maximum there, -2√(a|c|)/σ), on all of (0, T] otherwise.
    Infinite for S <= X (the bound is useless there)."""
    xmax = k * min(1.0, r / q) if q > 0.0 else k
    a = math.log(s / xmax)
    if not a > 0.0:
        return math.inf
    c = 0.5 * v * v - (r - q)
    te = t if c >= 0.0 else min(t, a / -c)
    g = (c * te - a) / (v * math.sqrt(te))
    return -k * math.expm1(-r * t) * _ncdf(g)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _boundary_years(t: float, log_ratio: float) -> float:
    """T_b: the first power of e^``log_ratio`` at or above ``t`` years, the T a boundary is
    solved over (module docstring); ``t`` itself when ``log_ratio`` is 0."""
    if log_ratio == 0.0:
        return t
    n = math.ceil(math.log(t) / log_ratio)
    tb = math.exp(n * log_ratio)
    return tb if tb >= t else math.exp((n + 1) * log_ratio)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _slot_at(memo: F64, slot: int) -> int:
    """Where ``slot`` starts in ``memo`` (:func:`memo_width`)."""
    width: int = (memo.shape[0] - _MEMO_KEY) // MEMO_SLOTS
    return _MEMO_KEY + slot * width


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _memo_keyed(memo: F64, tb: float, r: float, q: float, v: float, black: bool,
                is_call: bool) -> bool:  # fmt: skip
    """Whether ``memo`` (a row's, not empty) is keyed by these inputs (:func:`_memo_key`)."""
    b, c = 1.0 if black else 0.0, 1.0 if is_call else 0.0
    rates = memo[1] == r and memo[2] == q
    same: bool = memo[0] == tb and rates and memo[3] == v and memo[4] == b and memo[5] == c
    return same


@njit(cache=True, nogil=True, error_model="numpy")
def _memo_key(memo: F64, tb: float, r: float, q: float, v: float, black: bool,
              is_call: bool) -> None:  # fmt: skip
    """Make ``memo`` (a row's, or empty) the memo of these inputs (``tb``: T_b): unchanged
    when it is, else keyed by them with every slot unwritten."""
    if memo.shape[0] == 0 or _memo_keyed(memo, tb, r, q, v, black, is_call):
        return
    b, c = 1.0 if black else 0.0, 1.0 if is_call else 0.0
    memo[0], memo[1], memo[2], memo[3], memo[4], memo[5] = tb, r, q, v, b, c
    for slot in range(MEMO_SLOTS):
        memo[_slot_at(memo, slot)] = 0.0


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _memo_slot(memo: F64, slot: int) -> F64:
    """``slot`` of ``memo`` (empty when ``memo`` is)."""
    if memo.shape[0] == 0:
        return memo
    at = _slot_at(memo, slot)
    return memo[at : at + (memo.shape[0] - _MEMO_KEY) // MEMO_SLOTS]


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _memo_has(slot: F64, tier: int, steps: int) -> bool:
    """Whether a memo's ``slot`` (:func:`_memo_slot`) holds a boundary of ``tier`` solved in
    ``steps`` iterations (< 0: any)."""
    if slot.shape[0] == 0:
        return False
    return slot[0] == 1.0 and slot[1] == tier and (steps < 0 or slot[2] == steps)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _memo_read(slot: F64, tier: int, steps: int, coef: F64) -> bool:
    """``coef`` from a memo's ``slot`` when it holds that boundary (:func:`_memo_has`)."""
    if not _memo_has(slot, tier, steps):
        return False
    for j in range(coef.shape[0]):
        coef[j] = slot[_SLOT_HEAD + j]
    return True


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _memo_write(slot: F64, tier: int, taken: int, x_unit: float, coef: F64) -> None:
    """The boundary just solved into a memo's ``slot`` (none when it is empty)."""
    if slot.shape[0] == 0:
        return
    slot[1], slot[2], slot[3] = tier, taken, x_unit
    for j in range(coef.shape[0]):
        slot[_SLOT_HEAD + j] = coef[j]
    slot[0] = 1.0


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _panel_of(v: float) -> int:
    """The panel of vol ``v``: j with 2^j <= v < 2^(j+1)."""
    return math.floor(math.log2(v))


_PANEL_Z = np.cos(np.arange(PANEL_NODES) * math.pi / (PANEL_NODES - 1))
"""A panel's Chebyshev-Lobatto nodes in z = 2 (log2 vol - j) - 1."""
_PANEL_W = np.where(np.arange(PANEL_NODES) % 2 == 0, 1.0, -1.0)
_PANEL_W[[0, -1]] *= 0.5
"""Their barycentric weights: ±1 alternating, halved at the ends."""


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _table_width(tables: F64) -> int:
    """Floats in each table of a thread's ``tables`` (:func:`boundary_tables`)."""
    width: int = (tables.shape[0] - TABLE_SETS) // (TABLE_SETS * TABLE_WAYS)
    return width


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _table_set(tb: float, r: float, q: float, tier: int, panel: int) -> int:
    """The set of :data:`TABLE_SETS` a table's key falls in: FNV-1a over the key's floats'
    mantissas and exponents (math.frexp: exact) and its integers. (A tuple's hash would need
    numba's reference counting, which the solver's functions are compiled without.)"""
    h = -3750763034362895579  # FNV-1a offset basis, as int64
    for x in (tb, r, q):
        m, e = math.frexp(x)
        h = (h ^ int(m * 9007199254740992.0)) * 1099511628211  # 2^53; FNV prime (wraps)
        h = (h ^ e) * 1099511628211
    h = (h ^ tier) * 1099511628211
    h = (h ^ panel) * 1099511628211
    return (((h >> 32) ^ h) & 0x7FFFFFFF) % TABLE_SETS


@_uncounted
def _table_at(
    tables: F64, tb: float, r: float, q: float, tier: int, panel: int
) -> tuple[F64, bool]:
    """The table of these inputs in a thread's ``tables`` (:func:`boundary_tables`), and
    whether it holds their boundaries; else the table its set replaces next, marked unwritten
    (its set's next turns to the one after)."""
    width = _table_width(tables)
    at = _table_set(tb, r, q, tier, panel)
    for way in range(TABLE_WAYS):
        start = TABLE_SETS + (at * TABLE_WAYS + way) * width
        table = tables[start : start + width]
        if (table[5] == 1.0 and table[0] == tb and table[1] == r and table[2] == q
                and table[3] == tier and table[4] == panel):  # fmt: skip
            return table, True
    way = int(tables[at])
    tables[at] = (way + 1) % TABLE_WAYS
    start = TABLE_SETS + (at * TABLE_WAYS + way) * width
    table = tables[start : start + width]
    table[5] = 0.0
    return table, False


@_uncounted
def _table_boundary(
    tb: float, r: float, q: float, v: float, tier: int, panel: int, solver: Solver, coef: F64
) -> float:
    """Fill ``coef`` with the Chebyshev series of H of a put of strike 1 (r > 0) in ``tier``
    at vol ``v``, interpolated from its table of ``panel``'s vols (solved there first when
    not held); returns X.

    The table holds the boundary at PANEL_NODES vols, Chebyshev-Lobatto in log σ over the
    octave [2^panel, 2^(panel+1)], solved as each would be alone; ``coef`` is their barycentric
    interpolant at ``v``, which may lie a little outside the octave (a bumped vol, read from
    its centre's panel so that the Greeks' differences are smooth). Its content is a function
    of its key: so is every figure read from it, whatever the tables held before."""
    rule = solver.scheme.tiers[tier]
    n = rule.xi.shape[0]
    table, held = _table_at(solver.tables, tb, r, q, tier, panel)
    nodes = (table.shape[0] - _TABLE_HEAD) // PANEL_NODES
    if not held:
        for m in range(PANEL_NODES):
            vol = 2.0 ** (panel + 0.5 * (1.0 + _PANEL_Z[m]))
            at = _TABLE_HEAD + m * nodes
            table[6] = _put_boundary(
                1.0, tb, r, q, vol, rule, table[at : at + n], solver.work, False, -1
            )[0]
        table[0], table[1], table[2], table[3], table[4] = tb, r, q, tier, panel
        table[5] = 1.0
    z = 2.0 * (math.log2(v) - panel) - 1.0
    x_unit: float = table[6]
    total = 0.0
    for m in range(PANEL_NODES):
        d = z - _PANEL_Z[m]
        if d == 0.0:  # on a node: its boundary
            for j in range(n):
                coef[j] = table[_TABLE_HEAD + m * nodes + j]
            return x_unit
        total += _PANEL_W[m] / d
    coef[:n] = 0.0
    for m in range(PANEL_NODES):
        w = _PANEL_W[m] / ((z - _PANEL_Z[m]) * total)
        at = _TABLE_HEAD + m * nodes
        for j in range(n):
            coef[j] += w * table[at + j]
    return x_unit


EUROPEAN_TIER = N_TIERS
_EURO_REL = 1e-7
"""The tier code of a row priced European because its premium is provably negligible."""


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _pick_tier(
    scheme: Scheme,
    s: float,
    k: float,
    t: float,
    tb: float,
    r: float,
    q: float,
    v: float,
    spot: float,
    euro: float,
) -> int:
    """The tier of a put with r > 0 (:class:`Scheme`), or EUROPEAN_TIER where its premium is
    provably below both ``euro_tol`` times the option's ``spot`` and 1e-7 of its European
    price ``euro`` (1 % of either half of the fast target). The tier is picked by the
    boundary's T, ``tb`` (:func:`_boundary_years`): a function of the memo's key."""
    if scheme.euro_tol > 0.0:
        bound = _premium_bound(s, k, t, r, q, v)
        if bound <= scheme.euro_tol * spot and bound <= _EURO_REL * euro:
            return EUROPEAN_TIER
    rt = r * tb
    w = 2.0 * (r - q) / (v * v)
    for i in range(N_TIERS - 1):
        if rt <= scheme.rt_max[i] and w <= scheme.w_max[i]:
            return i
    return N_TIERS - 1


@_uncounted
def _american_full(
    is_call: bool,
    s: float,
    k: float,
    t: float,
    r: float,
    q: float,
    v: float,
    solver: Solver,
    warm: bool,
    pick: tuple[int, int, int],
    slot: F64,
    greeks: bool = True,
) -> tuple[float, float, float, float, bool, bool, int, int]:
    """Price, delta, gamma, speed (NaN on the tree; NaN, or their exact value in the exercise
    region, with ``greeks`` False: the price alone, the same to the bit, about 12 % faster),
    whether S is in the exercise region, whether a boundary was solved (not read from
    ``slot``), and the tier and iterations it took, on valid inputs; ``warm``: see
    :func:`_put_boundary`. ``pick`` = (tier, steps,
    panel): ``tier`` < 0: picked for these inputs, else that tier (EUROPEAN_TIER: the
    European price); ``steps`` < 0: the tier's iterations, else that many; ``panel``: the
    vol panel the boundary is read from where the solver has tables (:func:`_table_boundary`).
    The Greeks' bumped prices take the unbumped price's pick, so that their differences are
    smooth. ``slot``: a slot of a row's memo whose key is these inputs' (:func:`_memo_key`,
    :func:`_memo_slot`), or empty; the boundary is read from it when written there for this
    tier and iterations, else found (solved, or read from the tables) and written."""
    scheme, coef, work, tables = solver
    tier, steps, panel = pick
    # The put that prices this option: itself, or the call's symmetric put.
    ps, pk, pr, pq = (k, s, q, r) if is_call else (s, k, r, q)
    euro, e_delta, e_gamma, e_speed = _european(is_call, s, k, t, r, q, v, greeks)
    if pr <= 0.0 and pq >= pr:
        return euro, e_delta, e_gamma, e_speed, False, False, EUROPEAN_TIER, 0  # never early
    if 0.0 < pr * t <= _NEGLIGIBLE_RT and pq >= 0.0:
        # The premium is at most the interest on the strike, pk (1 - e^(-pr t)): below a
        # rounding of the price (a call with q = 1e-18, found by hypothesis, solved a boundary
        # at infinity and came out at intrinsic, below its European price).
        return euro, e_delta, e_gamma, e_speed, False, False, EUROPEAN_TIER, 0
    if pr < 0.0:  # q < r < 0 (put): two boundaries; the tree with the European control variate
        a_p, a_d, a_g = _binomial(is_call, s, k, t, r, q, v, TREE_STEPS, work)
        b_p, b_d, b_g = _binomial(is_call, s, k, t, r, q, v, TREE_STEPS, work, False)
        return (a_p - b_p + euro, a_d - b_d + e_delta, a_g - b_g + e_gamma, math.nan, False,
                False, EUROPEAN_TIER, 0)  # fmt: skip
    tb = _boundary_years(t, scheme.log_ratio)
    if tier < 0:
        tier = _pick_tier(scheme, ps, pk, t, tb, pr, pq, v, s, euro)
    if tier >= N_TIERS:
        # the premium is below euro_tol S (_premium_bound), and S above the boundary
        intrinsic = max(s - k if is_call else k - s, 0.0)
        return max(euro, intrinsic), e_delta, e_gamma, e_speed, False, False, tier, 0
    rule = scheme.tiers[tier]
    c = coef[: rule.xi.shape[0]]
    solved = not _memo_read(slot, tier, steps, c)
    if solved and tables.shape[0] > 0:  # the tier's iterations at each of the table's vols
        x_unit, taken = _table_boundary(tb, pr, pq, v, tier, panel, solver, c), rule.fp_steps
        _memo_write(slot, tier, taken, x_unit, c)
    elif solved:  # for a strike of 1: H is dimensionless, X scales with the strike
        x_unit, taken = _put_boundary(1.0, tb, pr, pq, v, rule, c, work, warm, steps)
        _memo_write(slot, tier, taken, x_unit, c)
    else:
        x_unit, taken = slot[3], int(slot[2])
    xmax = pk * x_unit
    prem, d_prem, g_prem, s_prem, exercise = _put_premium(
        ps, pk, t, pr, pq, v, rule, c, xmax, math.sqrt(t / tb), greeks
    )
    if is_call:
        # C(S, K) = S p(K/S) with p(a) = P(a, 1) (P homogeneous of degree 1 in spot and
        # strike); the put's derivatives are in its spot K.
        intrinsic = s - k
        if exercise and intrinsic >= euro:  # never below the European price
            return intrinsic, 1.0, 0.0, 0.0, True, solved, tier, taken
        a = k / s
        delta = e_delta + (prem - k * d_prem) / s
        gamma = e_gamma + a * a * g_prem
        speed = e_speed - 3.0 * a * a * g_prem / s - a * a * a * s_prem
    else:
        intrinsic = k - s
        if exercise and intrinsic >= euro:
            return intrinsic, -1.0, 0.0, 0.0, True, solved, tier, taken
        delta = e_delta + d_prem
        gamma = e_gamma + g_prem
        speed = e_speed + s_prem
    return max(euro + max(prem, 0.0), intrinsic), delta, gamma, speed, False, solved, tier, taken


@_uncounted
def _american(
    is_call: bool,
    s: float,
    k: float,
    t: float,
    r: float,
    q: float,
    v: float,
    solver: Solver,
    greeks: bool = True,
) -> tuple[float, float, float, bool]:
    """Price, delta, gamma and whether S is in the exercise region, on valid inputs
    (``greeks`` False: the price alone, :func:`_american_full`)."""
    p, d, g, _, exercise, _, _, _ = _american_full(
        is_call, s, k, t, r, q, v, solver, False, (-1, -1, _panel_of(v)), solver.coef[:0], greeks
    )
    return p, d, g, exercise


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _row_status(s: float, k: float, t: float, r: float, q: float, v: float) -> int:
    """BAD_INPUT, EXPIRED (t <= 0), BAD_VOL or OK, as engine.kernels checks a European row, and
    BAD_VOL also outside the scheme's own range of total variance (sigma sqrt(T) <= 1e-12,
    sigma^2 T >= 1e4)."""
    status = _gbs_status(s, k, t, r, q, v)
    if status == OK and not (v * math.sqrt(t) > 1e-12 and v * v * t < 1e4):
        return BAD_VOL
    return status


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _memo_bumps(memo: F64, tier: int, steps: int) -> bool:
    """Whether ``memo`` holds all four bumped boundaries of a row of ``tier`` and ``steps``."""
    for slot in range(1, MEMO_SLOTS):  # noqa: SIM110  # numba compiles no all() of a generator
        if not _memo_has(_memo_slot(memo, slot), tier, steps):
            return False
    return True


_VOL_BUMP = 1e-3  # relative: vega, vanna, volga
_RATE_BUMP = 1e-4  # absolute, per 1.00 of rate: rho
_TIME_BUMP = 1e-3  # relative: charm


@_uncounted
def _american_row(
    is_call: bool,
    s: float,
    k: float,
    t: float,
    r: float,
    q: float,
    v: float,
    black: bool,
    solver: Solver,
    out: F64,
    i: int,
    memo: F64,
) -> int:
    """Price and the Greeks of GREEK_FIELDS of one row into ``out[:, i]``; returns the status.

    ``black``: an option on a future (q = r; rho moves both, F held). ``memo``: the row's
    memo (:func:`memo_width`; empty: none), whose boundaries it reads where its key is these
    inputs' and writes where not: the same figures either way (module docstring)."""
    st = _row_status(s, k, t, r, q, v)
    w = 1.0 if is_call else -1.0
    if st == EXPIRED:
        out[0, i] = max(w * (s - k), 0.0)
        out[1, i] = 0.5 * w if s == k else (w if w * (s - k) > 0.0 else 0.0)
        for j in range(2, 9):
            out[j, i] = 0.0
        return st
    if st != OK:
        for j in range(9):
            out[j, i] = math.nan
        return st
    _memo_key(memo, _boundary_years(t, solver.scheme.log_ratio), r, q, v, black, is_call)
    panel = _panel_of(v)
    price, delta, gamma, speed, exercise, solved, tier, steps = _american_full(
        is_call, s, k, t, r, q, v, solver, False, (-1, -1, panel), _memo_slot(memo, 0)
    )
    out[0, i] = price
    out[1, i] = delta
    if exercise:  # worth its intrinsic value, which moves with S alone
        for j in range(2, 9):
            out[j, i] = 0.0
        return OK
    out[2, i] = gamma
    out[4, i] = r * price - (r - q) * s * delta - 0.5 * v * v * s * s * gamma
    # charm = dθ/dS of the PDE's theta, which needs dΓ/dS (speed)
    out[8, i] = q * delta - (r - q + v * v) * s * gamma - 0.5 * v * v * s * s * speed
    pick = (tier, steps, panel)
    tabled = solver.tables.shape[0] > 0
    if tier < N_TIERS and not (solved or tabled) and not _memo_bumps(memo, tier, steps):
        # read from the memo, the bumps not: solved again, so that they start from it as
        # they would without a memo (bumps read from tables start from nothing)
        solved = _american_full(is_call, s, k, t, r, q, v, solver, False, pick, memo[:0], False)[5]
    warm = solved and not tabled  # the bumps start from this solve (_put_boundary)
    hv = _VOL_BUMP * v
    p_up, d_up, _, _, _, _, _, _ = _american_full(
        is_call, s, k, t, r, q, v + hv, solver, warm, pick, _memo_slot(memo, 1)
    )
    p_dn, d_dn, _, _, _, _, _, _ = _american_full(
        is_call, s, k, t, r, q, v - hv, solver, warm, pick, _memo_slot(memo, 2)
    )
    out[3, i] = (p_up - p_dn) / (2.0 * hv)
    out[6, i] = (d_up - d_dn) / (2.0 * hv)
    # the centre solved as the bumps are, so that their difference is smooth
    centre = price
    if warm and solver.scheme.tiers[min(tier, N_TIERS - 1)].greek_steps > 0:
        centre = _american_full(is_call, s, k, t, r, q, v, solver, True, pick, memo[:0], False)[0]
    out[7, i] = (p_up - 2.0 * centre + p_dn) / (hv * hv)
    hr = _RATE_BUMP
    q_up = q + hr if black else q
    q_dn = q - hr if black else q
    p_up = _american_full(
        is_call, s, k, t, r + hr, q_up, v, solver, warm, pick, _memo_slot(memo, 3), False
    )[0]
    p_dn = _american_full(
        is_call, s, k, t, r - hr, q_dn, v, solver, warm, pick, _memo_slot(memo, 4), False
    )[0]
    out[5, i] = (p_up - p_dn) / (2.0 * hr)
    if math.isnan(speed):  # the tree gives no speed: charm by bumping T
        ht = _TIME_BUMP * t
        _, d_up, _, _ = _american(is_call, s, k, t + ht, r, q, v, solver)
        _, d_dn, _, _ = _american(is_call, s, k, t - ht, r, q, v, solver)
        out[8, i] = (d_dn - d_up) / (2.0 * ht)  # d(delta)/dt = -d(delta)/dT
    return OK


# A function that takes an array increments and decrements its reference count (an atomic
# operation) on every call, and the scheme holds 46 arrays: ~0.5 us a price, 1/3 of a row
# priced European. The kernels hand their rows views that hold no reference instead.


def _borrow_typing(typingctx: object, arr: types.Array) -> tuple[object, object]:
    """A view of ``arr`` that holds no reference (numba counts none for it): valid while
    ``arr`` is alive, which its caller sees to."""

    def codegen(context: BaseContext, builder: object, sig: object, args: list[object]) -> object:
        # numba's array helpers are untyped
        src = make_array(arr)(context, builder, value=args[0])  # type: ignore[no-untyped-call]
        dst = make_array(arr)(context, builder)  # type: ignore[no-untyped-call]
        populate_array(dst, data=src.data, shape=src.shape, strides=src.strides,  # type: ignore[no-untyped-call]
                       itemsize=src.itemsize, meminfo=None, parent=None)  # fmt: skip
        return dst._getvalue()

    return arr(arr), codegen


def _same(arr: F64) -> F64:
    return arr


# typed as what a kernel calls: the array in, the view out (numba passes the typing context);
# the array itself where the kernels run as plain Python (NUMBA_DISABLE_JIT=1)
_borrow = cast(
    Callable[[F64], F64],
    _same if numba.config.DISABLE_JIT else intrinsic(_borrow_typing),  # type: ignore[attr-defined]  # numba.config is untyped
)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _borrowed_tier(t: Tier) -> Tier:
    return Tier(
        _borrow(t.cheb), _borrow(t.xi), _borrow(t.fp_sin), _borrow(t.fp_cos), _borrow(t.fp_w),
        _borrow(t.pr_sin), _borrow(t.pr_cos), _borrow(t.pr_w), t.jn_steps, t.fp_steps,
        t.qd_steps, t.greek_steps, _borrow(t.fp_interp), t.fp_tol,
    )  # fmt: skip


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _borrowed(scheme: Scheme) -> Scheme:
    """``scheme`` of views that hold no reference: valid while ``scheme`` is alive (a kernel's
    argument is, for the whole call)."""
    t0, t1, t2, t3 = scheme.tiers
    tiers = (_borrowed_tier(t0), _borrowed_tier(t1), _borrowed_tier(t2), _borrowed_tier(t3))
    return Scheme(tiers, _borrow(scheme.rt_max), _borrow(scheme.w_max), scheme.euro_tol,
                  scheme.log_ratio)  # fmt: skip


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _room_sizes(scheme: Scheme) -> tuple[int, int]:
    """Floats of a solver's scratch: its largest tier's Chebyshev coefficients, and
    :func:`_put_boundary`'s work (or the tree's, :data:`TREE_STEPS`)."""
    n_max = 0
    size = 0
    for tier in scheme.tiers:
        n = tier.xi.shape[0]
        n_max = max(n_max, n)
        size = max(size, 5 * n + (n - 1) * tier.fp_w.shape[0] * (_TAB + 1), TREE_STEPS + 1)
    return n_max, size


def solver_room(scheme: Scheme) -> int:
    """Floats a solver of ``scheme`` works in (:func:`_solver_in`)."""
    n_max, size = _room_sizes(scheme)
    return int(n_max + size)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _solver_in(scheme: Scheme, room: F64) -> Solver:
    """A solver of ``scheme`` working in ``room`` (:func:`solver_room` floats at least), for
    a function without reference counting (:func:`_uncounted`), which cannot allocate."""
    n_max, size = _room_sizes(scheme)
    return Solver(scheme, room[:n_max], room[n_max : n_max + size], room[:0])


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _scratch(scheme: Scheme) -> tuple[Solver, F64]:
    """``scheme`` with room for its largest tier's Chebyshev coefficients and
    :func:`_put_boundary`'s work, and the ``owner`` of that room; the solver's arrays hold no
    reference (:func:`_borrow`), so the caller keeps ``owner`` alive past its last use of them
    (:func:`_keep`)."""
    n_max, size = _room_sizes(scheme)
    owner = np.empty(n_max + size)
    solver = Solver(scheme, _borrow(owner[:n_max]), _borrow(owner[n_max:]), _borrow(owner[:0]))
    return solver, owner


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _thread_tables(tables: F64_2D, thread: int) -> F64:
    """Row ``thread`` of ``tables`` (:func:`boundary_tables`), or none (each boundary solved)
    where they are empty or have no row for it."""
    own: F64 = tables[0, :0]
    if tables.shape[1] > 0 and thread < tables.shape[0]:
        own = tables[thread]
    return own


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _tabled(solver: Solver, tables: F64) -> Solver:
    """``solver`` reading the fast scheme's boundaries from ``tables`` (a thread's row of
    :func:`boundary_tables`, alive while the solver is used; empty: none)."""
    return Solver(solver.scheme, solver.coef, solver.work, _borrow(tables))


@njit(cache=True, nogil=True, error_model="numpy")
def _keep(owner: F64) -> None:
    """Nothing: a use of ``owner`` here keeps it alive up to here (numba releases an array
    after its last use)."""


class _Rows(NamedTuple):
    """A kernel's input columns, grouped: numba's parallel loop takes them so."""

    is_call: BoolArray
    S: F64
    K: F64
    T: F64
    r: F64
    q: F64
    sigma: F64


@njit(cache=True, nogil=True, error_model="numpy")
def _row_in_parts(
    rows: _Rows,
    i: int,
    black: bool,
    t0: Tier,
    t1: Tier,
    t2: Tier,
    t3: Tier,
    rt_max: F64,
    w_max: F64,
    limits: tuple[float, float],
    out: F64,
    tables: F64,
) -> int:
    """:func:`_american_row` of row ``i`` on a scheme passed as its parts (``limits``: its
    euro_tol and log_ratio), with its own scratch and the thread's boundary ``tables``."""
    euro_tol, log_ratio = limits
    scheme = _borrowed(Scheme((t0, t1, t2, t3), rt_max, w_max, euro_tol, log_ratio))
    solver, owner = _scratch(scheme)
    solver = _tabled(solver, tables)
    st = _american_row(
        rows.is_call[i], rows.S[i], rows.K[i], rows.T[i], rows.r[i], rows.q[i], rows.sigma[i],
        black, solver, out, i, solver.coef[:0],
    )  # fmt: skip
    _keep(owner)
    return st


_GREEKS_SIG = void(
    boolean[::1],  # is_call
    float64[::1],  # S (or F), quote currency
    float64[::1],  # K
    float64[::1],  # T, years
    float64[::1],  # r, decimal
    float64[::1],  # q, decimal (= r for an option on a future)
    float64[::1],  # sigma, decimal
    boolean,  # black: options on futures (rho holds F)
    _SCHEME,
    float64[:, ::1],  # out: GREEK_FIELDS x rows
    int8[::1],  # status
    float64[:, ::1],  # tables: boundary_tables, a row per thread (NO_TABLES: none)
)


@njit(_GREEKS_SIG, cache=True, nogil=True, error_model="numpy")
def american_kernel(
    is_call: BoolArray,
    S: F64,
    K: F64,
    T: F64,
    r: F64,
    q: F64,
    sigma: F64,
    black: bool,
    scheme: Scheme,
    out: F64,
    status: I8,
    tables: F64_2D,
) -> None:
    """American price and Greeks (raw units of engine.units), single thread; boundaries
    interpolated from ``tables[0]`` where it is not empty (:func:`_table_boundary`)."""
    scheme = _borrowed(scheme)
    solver, owner = _scratch(scheme)
    solver = _tabled(solver, tables[0])
    for i in range(S.shape[0]):
        status[i] = _american_row(
            is_call[i], S[i], K[i], T[i], r[i], q[i], sigma[i], black, solver, out, i,
            solver.coef[:0],
        )  # fmt: skip
    _keep(owner)


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _parallel_in_parts(
    rows: _Rows,
    black: bool,
    t0: Tier,
    t1: Tier,
    t2: Tier,
    t3: Tier,
    rt_max: F64,
    w_max: F64,
    limits: tuple[float, float],
    out: F64,
    status: I8,
    tables: F64_2D,
) -> None:
    for i in prange(rows.S.shape[0]):
        own = _thread_tables(tables, get_thread_id())  # type: ignore[no-untyped-call]  # numba's
        status[i] = _row_in_parts(rows, i, black, t0, t1, t2, t3, rt_max, w_max, limits,
                                  out, own)  # fmt: skip


@njit(_GREEKS_SIG, cache=True, nogil=True, error_model="numpy")
def american_parallel_kernel(
    is_call: BoolArray,
    S: F64,
    K: F64,
    T: F64,
    r: F64,
    q: F64,
    sigma: F64,
    black: bool,
    scheme: Scheme,
    out: F64,
    status: I8,
    tables: F64_2D,
) -> None:
    """:func:`american_kernel` over numba's thread pool (``prange``), each thread on its own
    row of ``tables``."""
    # numba's parallel loop takes no tuple of tuples of arrays: the scheme crosses in parts
    t0, t1, t2, t3 = scheme.tiers
    rows = _Rows(is_call, S, K, T, r, q, sigma)
    _parallel_in_parts(rows, black, t0, t1, t2, t3, scheme.rt_max, scheme.w_max,
                       (scheme.euro_tol, scheme.log_ratio), out, status, tables)  # fmt: skip


_PRICE_SIG = void(
    boolean[::1],
    float64[::1],
    float64[::1],
    float64[::1],
    float64[::1],
    float64[::1],
    float64[::1],
    _SCHEME,
    float64[::1],  # out: price per row, quote currency
    int8[::1],
    float64[:, ::1],  # tables (NO_TABLES: none)
)


@njit(_PRICE_SIG, cache=True, nogil=True, error_model="numpy")
def american_price_kernel(
    is_call: BoolArray,
    S: F64,
    K: F64,
    T: F64,
    r: F64,
    q: F64,
    sigma: F64,
    scheme: Scheme,
    out: F64,
    status: I8,
    tables: F64_2D,
) -> None:
    """American price alone (no Greeks), single thread; NaN where the status is an error;
    boundaries interpolated from ``tables[0]`` where it is not empty."""
    scheme = _borrowed(scheme)
    solver, owner = _scratch(scheme)
    solver = _tabled(solver, tables[0])
    for i in range(S.shape[0]):
        st = _row_status(S[i], K[i], T[i], r[i], q[i], sigma[i])
        status[i] = st
        if st == EXPIRED:
            out[i] = max((S[i] - K[i]) if is_call[i] else (K[i] - S[i]), 0.0)
        elif st != OK:
            out[i] = math.nan
        else:
            out[i] = _american(is_call[i], S[i], K[i], T[i], r[i], q[i], sigma[i], solver, False)[0]
    _keep(owner)


_BINOMIAL_SIG = void(
    boolean[::1],
    float64[::1],
    float64[::1],
    float64[::1],
    float64[::1],
    float64[::1],
    float64[::1],
    int64,  # steps
    float64[::1],  # out: price per row
    int8[::1],
)


@njit(_BINOMIAL_SIG, cache=True, nogil=True, error_model="numpy")
def binomial_price_kernel(
    is_call: BoolArray,
    S: F64,
    K: F64,
    T: F64,
    r: F64,
    q: F64,
    sigma: F64,
    steps: int,
    out: F64,
    status: I8,
) -> None:
    """American price on a Cox-Ross-Rubinstein tree of ``steps`` steps (the benchmark's
    yardstick and the double-boundary fallback), single thread."""
    values = np.empty(steps + 1)
    for i in range(S.shape[0]):
        st = _row_status(S[i], K[i], T[i], r[i], q[i], sigma[i])
        status[i] = st
        if st == OK:
            out[i] = _binomial(is_call[i], S[i], K[i], T[i], r[i], q[i], sigma[i], steps, values)[0]
        elif st == EXPIRED:
            out[i] = max((S[i] - K[i]) if is_call[i] else (K[i] - S[i]), 0.0)
        else:
            out[i] = math.nan


# ------------------------------------------------------------------------ implied volatility

_IV_LO = 1e-4  # the vol bracket searched, decimal
_IV_HI = 10.0
_IV_MAX_ITER = 48
_IV_XTOL = 1e-13  # relative width of the bracket at which the root is found
_IV_FTOL = 1e-13  # |American(σ) - price| per unit of spot at which σ is the root
_IV_STEP_TOL = 1e-10  # relative step of σ below which the step's end is the root


@njit(cache=True, nogil=True, error_model="numpy")
def _euro_start(
    price: float, is_call: bool, s: float, k: float, t: float, r: float, q: float
) -> float:
    """The European implied vol of the American price (an upper bound of the American one,
    as the premium is >= 0), or 0.3 where the price is outside the European bounds."""
    f = s * math.exp((r - q) * t)
    df = math.exp(-r * t)
    sig, st = _iv_row(price, is_call, f, k, t, df)
    if st == OK and _IV_LO < sig < _IV_HI:
        return sig
    return 0.3


@_uncounted
def _american_iv(
    price: float,
    is_call: bool,
    s: float,
    k: float,
    t: float,
    r: float,
    q: float,
    solver: Solver,
) -> tuple[float, int]:
    """σ with American(σ) = price: secant steps kept inside a shrinking bracket [a, b] of
    [1e-4, 10], bisection when a step leaves it; at most 48 prices."""
    st = _row_status(s, k, t, r, q, 0.2)
    if st == OK and not math.isfinite(price):
        st = BAD_INPUT
    if st != OK:
        return math.nan, st
    intrinsic = max((s - k) if is_call else (k - s), 0.0)
    upper = s if is_call else k
    if price <= intrinsic:
        return math.nan, PRICE_BELOW_INTRINSIC
    if price >= upper:
        return math.nan, PRICE_ABOVE_MAX
    a, fa = _IV_LO, math.nan  # A(a) < price once fa is known
    b, fb = _IV_HI, math.nan  # A(b) > price once fb is known
    x = _euro_start(price, is_call, s, k, t, r, q)
    x_prev, f_prev = math.nan, math.nan
    width = math.inf
    stalls = 0
    warm = False  # QD+ of each iterate from the last one's (_put_boundary)
    no_memo = solver.coef[:0]
    for _ in range(_IV_MAX_ITER):
        res = _american_full(
            is_call, s, k, t, r, q, x, solver, warm, (-1, -1, _panel_of(x)), no_memo, False
        )
        warm = warm or res[5]
        fx = res[0] - price
        if abs(fx) <= _IV_FTOL * s:
            return x, OK
        if fx < 0.0:
            a, fa = x, fx
        else:
            b, fb = x, fx
        bracketed = not (math.isnan(fa) or math.isnan(fb))
        if bracketed:
            if b - a <= _IV_XTOL * b:
                return x, OK
            stalls = stalls + 1 if b - a > 0.5 * width else 0
            width = b - a
        if math.isnan(f_prev):  # first step: the European IV of the de-Americanised price
            premium = fx + price - _european(is_call, s, k, t, r, q, x, False)[0]
            f = s * math.exp((r - q) * t)
            x_new, st = _iv_row(price - premium, is_call, f, k, t, math.exp(-r * t))
            if st != OK:  # below the European bounds: the bracket's fallback below
                x_new = math.nan
        else:
            slope = (fx - f_prev) / (x - x_prev)
            x_new = x - fx / slope if slope > 0.0 else math.nan
        if a < x_new < b and stalls < 3 and abs(x_new - x) <= _IV_STEP_TOL * x:
            # a secant (or de-Americanised) step this small leaves x_new far closer to the
            # root than x: taken without pricing it (one price a row fewer)
            return x_new, OK
        if not (a < x_new < b) or stalls >= 3:
            stalls = 0
            if math.isnan(fa):  # no point below the price yet: head for the lower end
                x_new = max(0.25 * x, a)
            elif math.isnan(fb):
                x_new = min(4.0 * x, b)
            else:
                x_new = 0.5 * (a + b)
        if x_new == x:  # pinned at an end of the searched range
            if x == _IV_LO:
                return math.nan, PRICE_BELOW_INTRINSIC
            if x == _IV_HI:
                return math.nan, PRICE_ABOVE_MAX
            return x, OK
        if abs(x_new - x) <= 4e-16 * x:
            return x_new, OK
        x_prev, f_prev = x, fx
        x = x_new
    return x, NO_CONVERGENCE


_IV_SIG = void(
    float64[::1],  # price, quote currency
    boolean[::1],
    float64[::1],
    float64[::1],
    float64[::1],
    float64[::1],
    float64[::1],
    _SCHEME,
    float64[::1],  # out: sigma, decimal
    int8[::1],
    float64[:, ::1],  # tables (NO_TABLES: none)
)


@njit(_IV_SIG, cache=True, nogil=True, error_model="numpy")
def american_iv_kernel(
    price: F64,
    is_call: BoolArray,
    S: F64,
    K: F64,
    T: F64,
    r: F64,
    q: F64,
    scheme: Scheme,
    sigma: F64,
    status: I8,
    tables: F64_2D,
) -> None:
    """Implied volatility of American prices under ``scheme``, single thread; boundaries
    interpolated from ``tables[0]`` where it is not empty."""
    scheme = _borrowed(scheme)
    solver, owner = _scratch(scheme)
    solver = _tabled(solver, tables[0])
    for i in range(price.shape[0]):
        sigma[i], status[i] = _american_iv(
            price[i], is_call[i], S[i], K[i], T[i], r[i], q[i], solver
        )
    _keep(owner)
