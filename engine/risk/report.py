"""The daemon's risk payloads: each book's VaR and ES by every method, its stress grid and its
margin, computed from a :class:`engine.state.BookRisk` copy and the recorded moves
(docs/risk.md, docs/margin.md, docs/redis.md). Pure: the runtime calls these off the event loop
and publishes the results.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final

import msgspec
import numpy as np
import numpy.typing as npt

from engine import kernels
from engine.constraints import PositiveFloat, PositiveInt
from engine.instruments import Instrument
from engine.outputs import (
    UNITS,
    VAR_METHODS,
    FutureHedge,
    HedgePayload,
    OptionHedge,
    Payload,
    Payoff,
    Residual,
    SmileButterfly,
    SmilePayload,
    StrategyLeg,
    StrategyPayload,
    StressPayload,
    Svi,
    TermStructurePayload,
    VarMethod,
    VarPayload,
)
from engine.risk import hedge, margin, skew, var
from engine.risk.book_margin import margin_payload, margin_payloads
from engine.risk.breakdown import AttributionConfig
from engine.risk.cpt import CptConfig
from engine.risk.crosshedge import CrossHedgeConfig
from engine.risk.history import MoveHistory
from engine.risk.liquidity import LiquidityConfig
from engine.risk.parity import ForwardsConfig
from engine.risk.positioning import PositioningConfig
from engine.risk.scenarios import stacked
from engine.risk.strategies import StrategyHolding, payoff_diagram, strategy_greeks
from engine.risk.stress import DEFAULT_SPOT_SHOCKS, DEFAULT_VOL_SHOCKS, stress_grids
from engine.risk.usbook import UsMarginConfig
from engine.risk.vectors import (
    CommonVectors,
    VarSettings,
    common_vectors,
    figures_payload,
    not_valued,
    var_payloads,
)
from engine.shards import Underlying
from engine.state import AGG_FIELDS, BookRisk, Chain, Portfolio, Priced

FloatArray = npt.NDArray[np.float64]

__all__ = [
    "FAMILY_PERIODS",
    "VOL_LEVEL_DAYS",
    "HedgeInputs",
    "RiskConfig",
    "StrategyHolding",
    "family_periods",
    "hedge_inputs",
    "hedge_payloads",
    "margin_payload",
    "margin_payloads",
    "risk_payloads",
    "skew_payloads",
    "strategy_payload",
    "stress_payload",
    "stress_payloads",
    "var_payload",
    "vol_level",
]

Confidence = Annotated[float, msgspec.Meta(gt=0.5, lt=1.0)]

_DELTA_USD: Final = AGG_FIELDS.index("delta_usd")
_CASH_GAMMA: Final = AGG_FIELDS.index("cash_gamma")


class RiskConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[risk]``: the portfolio-risk figures, how and how often (docs/config.md).

    Attributes:
        enabled: compute and publish them at all.
        var_interval_s: period of the VaR payloads.
        stress_interval_s: period of the stress-grid payloads.
        confidence: of the VaR (the probability that the loss does not exceed it).
        es_confidence: of the expected shortfall.
        horizon_days: calendar days of the VaR horizon.
        method: the method whose figures are the payload's ``var`` and ``es``.
        mc_scenarios: Monte Carlo draws.
        mc_seed: the Monte Carlo generator's seed (the same seed and inputs: the same figures).
        scenario_underlyings: the common scenario set (:mod:`engine.risk.vectors`): every
            book's VaR and ES on the moves and Monte Carlo draws of these underlyings, in this
            order, and a firm-wide ``var`` payload (key ``*``); what shards publish their P&L
            vectors on for ``riskd aggregate`` (docs/scaling.md). Empty: each book on its own
            underlyings' scenarios.
        history: CSV of daily levels seeding the window of moves (``date,underlying,price,vol``;
            relative to the config file); empty: the window starts empty.
        record_history: append each level the daemon records to ``history`` (so a restart
            keeps it); false: recorded levels stay in memory only (the demos: their seed files
            are part of the checkout).
        window_days: levels kept per underlying (the window holds one move fewer).
        record_at_utc: the time of day, UTC ``HH:MM``, at which the daemon records each
            underlying's level into the window.
        stress_spot: relative spot shocks of the stress grid's rows.
        stress_vol: relative vol shocks of its columns.
        margin_interval_s: period of the margin payloads.
        equity_usd: each book's equity, USD, for margin utilisation (a book without: null).
        margin_pm: per underlying, fields of :class:`engine.risk.margin.DeribitPMParams` that
            differ from Deribit's published set (BTC's for every underlying but ETH).
        margin_standard: per underlying, fields of
            :class:`engine.risk.margin.DeribitStandardParams` that differ likewise.
        margin_span: fields of :class:`engine.risk.margin.SpanParams` that differ from its
            defaults, for every underlying.
        hedge_interval_s: period of the hedge payloads.
        hedge_future: per underlying, the future or perpetual to delta-hedge in (no entry: no
            hedge payload for that underlying).
        hedge_options: per underlying, one option (delta-gamma neutral) or two (gamma-vega
            neutral) to hedge with besides the future.
        hedge_option_lot: the step option quantities are rounded to (Deribit: 0.1).
        hedge_contract_usd: per underlying, USD notional of one inverse contract, where it
            differs from Deribit's (BTC 10, ETH 1, else 10).
        equity_coin: per book, the account's equity in coin of the hedged underlying, for the
            USD-flat target of an inverse hedge (a book without: null).
        skew_interval_s: period of the skew payloads (SVI fits of every chain).
        smile_vols: give a held option whose own quote is missing or stale the vol of its
            expiry's fitted smile (a quote with that ``iv`` and the fit's forward).
        strategy_interval_s: period of the strategy payloads.
        liquidity: ``[risk.liquidity]``, the exit cost and liquidity-adjusted VaR.
        cross_hedge: ``[risk.cross_hedge]``, the crosshedge payloads (docs/hedging.md).
        cpt: ``[risk.cpt]``, the prospect-theory payloads (docs/risk.md).
        attribution: ``[risk.attribution]``: attribution and capital allocation.
        positioning: ``[risk.positioning]``: open interest and dealer gamma
            (docs/positioning.md).
        us_margin: ``[risk.us_margin]``: the US margin of books of US listed options and
            futures, in the margin payload (docs/margin.md#us-margin-in-the-daemon).
        forwards: ``[risk.forwards]``: the ``forwards`` payloads (implied forwards and
            dividends per expiry, docs/us-options.md).
        threads: the kernel threads of the periods' computations; 0: every thread numba has
            but one (at least one), so that the streaming path always keeps a core.
    """

    enabled: bool = True
    var_interval_s: PositiveFloat = 1.0
    stress_interval_s: PositiveFloat = 1.0
    confidence: Confidence = 0.99
    es_confidence: Confidence = 0.975
    horizon_days: PositiveFloat = 1.0
    method: VarMethod = "historical"
    mc_scenarios: PositiveInt = 10_000
    mc_seed: int = 20261125
    scenario_underlyings: tuple[Underlying, ...] = ()
    history: str = ""
    record_history: bool = True
    window_days: Annotated[int, msgspec.Meta(ge=2)] = 251
    record_at_utc: Annotated[str, msgspec.Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "08:00"
    stress_spot: tuple[Annotated[float, msgspec.Meta(gt=-1.0)], ...] = DEFAULT_SPOT_SHOCKS
    stress_vol: tuple[float, ...] = DEFAULT_VOL_SHOCKS
    margin_interval_s: PositiveFloat = 1.0
    equity_usd: dict[str, PositiveFloat] = {}
    margin_pm: dict[str, dict[str, float]] = {}
    margin_standard: dict[str, dict[str, float]] = {}
    margin_span: dict[str, float] = {}
    hedge_interval_s: PositiveFloat = 1.0
    hedge_future: dict[str, str] = {}
    hedge_options: dict[str, Annotated[list[str], msgspec.Meta(min_length=1, max_length=2)]] = {}
    hedge_option_lot: PositiveFloat = 0.1
    hedge_contract_usd: dict[str, PositiveFloat] = {}
    equity_coin: dict[str, float] = {}
    skew_interval_s: PositiveFloat = 5.0
    smile_vols: bool = True
    strategy_interval_s: PositiveFloat = 1.0
    liquidity: LiquidityConfig = msgspec.field(default_factory=LiquidityConfig)
    cross_hedge: CrossHedgeConfig = CrossHedgeConfig()
    cpt: CptConfig = CptConfig()
    attribution: AttributionConfig = AttributionConfig()
    positioning: PositioningConfig = PositioningConfig()
    us_margin: UsMarginConfig = UsMarginConfig()
    forwards: ForwardsConfig = ForwardsConfig()
    threads: Annotated[int, msgspec.Meta(ge=0)] = 0

    def __post_init__(self) -> None:
        twice = sorted({u for u in self.scenario_underlyings
                        if self.scenario_underlyings.count(u) > 1})  # fmt: skip
        if twice:
            raise ValueError(f"risk scenario_underlyings: {', '.join(twice)} more than once")
        if not (self.stress_spot and self.stress_vol):
            raise ValueError("risk stress_spot and stress_vol must not be empty")
        for table, overrides in (("margin_pm", self.margin_pm),
                                 ("margin_standard", self.margin_standard)):  # fmt: skip
            for und in overrides:
                self._margin_params(table, und)
        self.span_params()
        for und in self.hedge_options:
            if und not in self.hedge_future:
                raise ValueError(f"risk hedge_options.{und}: needs hedge_future.{und} too")

    def var_settings(self) -> VarSettings:
        """What the common scenario set's figures depend on."""
        return VarSettings(
            confidence=self.confidence,
            es_confidence=self.es_confidence,
            horizon_days=self.horizon_days,
            method=self.method,
            mc_scenarios=self.mc_scenarios,
            mc_seed=self.mc_seed,
            scenario_underlyings=self.scenario_underlyings,
        )

    def _margin_params(self, table: str, underlying: str) -> Any:
        base = _MARGIN_BASES[table]
        params = base.get(underlying, base["BTC"])
        overrides = getattr(self, table).get(underlying, {})
        try:
            return dataclasses.replace(params, **overrides)
        except (TypeError, ValueError) as exc:  # an unknown field, a bad value
            raise ValueError(f"risk {table}.{underlying}: {exc}") from None

    def pm_params(self, underlying: str) -> margin.DeribitPMParams:
        """Deribit portfolio-margin parameters of ``underlying``."""
        params: margin.DeribitPMParams = self._margin_params("margin_pm", underlying)
        return params

    def standard_params(self, underlying: str) -> margin.DeribitStandardParams:
        """Deribit standard-margin parameters of ``underlying``."""
        params: margin.DeribitStandardParams = self._margin_params("margin_standard", underlying)
        return params

    def span_params(self) -> margin.SpanParams:
        """SPAN parameters (every underlying)."""
        try:
            return dataclasses.replace(margin.DEFAULT_SPAN, **self.margin_span)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"risk margin_span: {exc}") from None


_MARGIN_BASES: Final[dict[str, dict[str, Any]]] = {
    "margin_pm": {"BTC": margin.DERIBIT_PM_BTC, "ETH": margin.DERIBIT_PM_ETH},
    "margin_standard": {"BTC": margin.DERIBIT_STANDARD_BTC, "ETH": margin.DERIBIT_STANDARD_ETH},
}


def _floats(a: npt.ArrayLike) -> list[float]:
    """A 1-D array as Python floats (NaN stays NaN: JSON null)."""
    out: list[float] = np.asarray(a, dtype=np.float64).tolist()
    return out


def _nested(a: npt.ArrayLike) -> Any:
    """An n-D array as nested lists of Python floats."""
    return np.asarray(a, dtype=np.float64).tolist()


def var_payload(
    br: BookRisk,
    history: MoveHistory,
    cfg: RiskConfig,
    now_ns: int,
    scenarios: tuple[var.VaR, var.VaR] | None = None,
) -> VarPayload:
    """The ``var`` payload of one book: VaR and ES (USD losses over ``horizon_days``) by every
    method; a method that cannot run (fewer than 2 days of moves of every underlying the book
    holds, or none of its positions priced yet) gives nulls and says why in ``status``. With
    ``scenario_underlyings``, on the common scenario set (:mod:`engine.risk.vectors`).
    ``scenarios``: its historical and Monte Carlo figures when already computed
    (:func:`scenario_vars`)."""
    if cfg.scenario_underlyings:
        common = common_vectors([br], history, cfg.var_settings())
        return var_payloads(common, cfg.var_settings(), now_ns, firm=False)[0][1]
    c, ce, h = cfg.confidence, cfg.es_confidence, cfg.horizon_days
    status: dict[str, str] = {}
    figures: dict[str, var.VaR] = {}
    n_days = history.moves(br.underlyings)[0].shape[0]
    why = not_valued(br, n_days)
    if why is not None:
        status = dict.fromkeys(VAR_METHODS, why)
    else:
        u = len(br.underlyings)
        cov = history.covariance(br.underlyings)
        delta_usd = br.figures[:, _DELTA_USD]
        # d²P&L/dr² in the log-return r: Γ S² + Δ S (docs/risk.md)
        gamma_usd = 100.0 * br.figures[:, _CASH_GAMMA] + delta_usd
        figures["delta_normal"] = var.delta_normal(delta_usd, cov[:u, :u], c, ce, h)
        figures["delta_gamma"] = var.delta_gamma(delta_usd, gamma_usd, cov[:u, :u], c, ce, h)
        if scenarios is None:
            scenarios = scenario_vars([br], history, cfg)[0]
        figures["historical"], figures["monte_carlo"] = scenarios
        status = dict.fromkeys(VAR_METHODS, "ok")

    return figures_payload(
        figures,
        cfg.var_settings(),
        status,
        ts_ns=now_ns,
        valuation_ts_ns=br.valuation_ns,
        book=br.book,
        underlyings=br.underlyings,
        history_days=n_days,
        positions=int(br.positions.kind.size),
    )


def scenario_vars(
    books: Sequence[BookRisk], history: MoveHistory, cfg: RiskConfig
) -> dict[int, tuple[var.VaR, var.VaR]]:
    """Each book's historical and Monte Carlo VaR (by its index in ``books``; none for a book
    that holds nothing or whose underlyings have fewer than 2 days of moves). Books over the
    same underlyings share the window and the draws (the same covariance and seed), so each
    such group is revalued at once, each distinct instrument once per scenario
    (:func:`~engine.risk.var.historical_books`, :func:`~engine.risk.var.monte_carlo_books`):
    the figures of one book at a time."""
    c, ce, h = cfg.confidence, cfg.es_confidence, cfg.horizon_days
    groups: dict[tuple[str, ...], list[int]] = {}
    for k, br in enumerate(books):
        if br.underlyings:
            groups.setdefault(tuple(br.underlyings), []).append(k)
    out: dict[int, tuple[var.VaR, var.VaR]] = {}
    for underlyings, members in groups.items():
        ret, dvol = history.moves(list(underlyings))
        if ret.shape[0] < 2:
            continue
        book, which = stacked([books[k].positions for k in members])
        cov = history.covariance(list(underlyings))
        n = len(members)
        hist = var.historical_books(book, which, n, ret, dvol, c, ce, h)
        mc = var.monte_carlo_books(book, which, n, cov, cfg.mc_scenarios, cfg.mc_seed, c, ce, h)
        out.update(zip(members, zip(hist.books, mc.books, strict=True), strict=True))
    return out


def stress_payloads(books: Sequence[BookRisk], cfg: RiskConfig, now_ns: int) -> list[StressPayload]:
    """The ``stress`` payload of each of ``books``: its P&L (USD) under every (spot shock, vol
    shock) pair, all underlyings together, and ``stress_loss``, the worst loss on the grid;
    every book's grid in one revaluation per distinct instrument (:func:`stress_grids`)."""
    grids = stress_grids([br.positions for br in books], cfg.stress_spot, cfg.stress_vol)
    return [
        StressPayload(
            ts_ns=now_ns,
            valuation_ts_ns=br.valuation_ns,
            book=br.book,
            underlyings=br.underlyings,
            spot=_floats(grid.spot),
            vol=_floats(grid.vol),
            pnl=_nested(grid.pnl),
            stress_loss=float(-np.min(grid.pnl)),
            excluded=sorted(br.instrument(i) for i in grid.excluded.tolist()),
            units=_STRESS_UNITS,
        )
        for br, grid in zip(books, grids, strict=True)
    ]


def stress_payload(br: BookRisk, cfg: RiskConfig, now_ns: int) -> StressPayload:
    """The ``stress`` payload of one book (:func:`stress_payloads`)."""
    return stress_payloads([br], cfg, now_ns)[0]


_STRESS_UNITS: Final = {
    "spot": "relative move",
    "vol": "relative move",
    "pnl": "USD",
    "stress_loss": "USD",
}


FAMILY_PERIODS: Final[tuple[tuple[str, Callable[[RiskConfig], float | None]], ...]] = (
    ("var", lambda c: c.var_interval_s),
    ("stress", lambda c: c.stress_interval_s),
    ("margin", lambda c: c.margin_interval_s),
    ("skew", lambda c: c.skew_interval_s),
    ("strategy", lambda c: c.strategy_interval_s),
    ("hedge", lambda c: c.hedge_interval_s if c.hedge_future else None),
    ("liquidity", lambda c: c.liquidity.interval_s if c.liquidity.enabled else None),
    ("crosshedge", lambda c: c.cross_hedge.interval_s if c.cross_hedge.enabled else None),
    ("cpt", lambda c: c.cpt.interval_s if c.cpt.enabled else None),
    ("attribution", lambda c: c.attribution.interval_s if c.attribution.enabled else None),
    ("capital", lambda c: c.attribution.capital_interval_s if c.attribution.enabled else None),
    ("positioning", lambda c: c.positioning.interval_s if c.positioning.enabled else None),
    ("forwards", lambda c: c.forwards.interval_s if c.forwards.enabled else None),
)
"""Each family the risk task publishes and its period in seconds under a config (None: off)."""


def family_periods(config: RiskConfig) -> dict[str, float]:
    """The families on, and each one's period in seconds (:data:`FAMILY_PERIODS`)."""
    return {f: s for f, period in FAMILY_PERIODS if (s := period(config)) is not None}


@dataclass(frozen=True, slots=True)
class HedgeInputs:
    """What the hedge payloads of one underlying need besides the books: its hedge instruments
    (the future first, then the options), each one's figures per unit of position quantity
    (:meth:`engine.state.Portfolio.priced`) and price, and whether the future is
    inverse with its contract's USD notional, or linear with its multiplier."""

    underlying: str
    instruments: list[str]
    units: FloatArray
    prices: FloatArray
    inverse: bool
    contract: float


_FIG: Final = {name: AGG_FIELDS.index(name) for name in ("delta", "delta_adj", "gamma", "vega")}


def _future_hedge(h: hedge.FutureHedge, per_unit: float) -> FutureHedge:
    """Contracts (rounded, and exact), the position quantity they make and the delta left."""
    contracts = float(h.contracts)
    return FutureHedge(
        contracts=contracts,
        contracts_exact=float(h.exact),
        quantity=contracts * per_unit,
        residual_delta=float(h.residual_delta),
    )


def _residual(greeks: FloatArray) -> Residual:
    delta, gamma, vega = greeks.tolist()  # hedge.GREEKS
    return Residual(delta=delta, gamma=gamma, vega=vega)


def hedge_payloads(
    br: BookRisk, inputs: dict[str, HedgeInputs], cfg: RiskConfig, now_ns: int
) -> list[HedgePayload]:
    """The ``hedge`` payloads of one book, one per underlying with a configured hedge future
    (docs/hedging.md): the delta-neutral quantity of the future (an inverse one: coin-flat and,
    with ``equity_coin``, USD-flat), and with hedge options the delta-gamma or gamma-vega
    neutral quantities, with the Greeks left before and after rounding. Positive: buy."""
    out: list[HedgePayload] = []
    for u, und in enumerate(br.underlyings):
        h = inputs.get(und)
        if h is None:
            continue
        fig = br.figures[u]
        delta = float(fig[_FIG["delta_adj" if h.inverse else "delta"]])
        delta_hedge = usd_flat = None
        option_hedge = None
        if not np.all(np.isfinite(h.prices)) or not np.all(np.isfinite(h.units)):
            bad = [n for n, px in zip(h.instruments, h.prices.tolist(), strict=True) if px != px]
            status = f"no price for {', '.join(bad) or h.instruments[0]}"
        else:
            status = "ok"
            F = float(h.prices[0])
            # position quantity per contract; the delta of one contract
            per_unit = h.contract if h.inverse else 1.0
            future_delta = h.contract / F if h.inverse else h.contract
            equity = cfg.equity_coin.get(br.book)
            if h.inverse:
                inv = hedge.inverse_hedge(delta, 0.0 if equity is None else equity, F, h.contract)
                delta_hedge = _future_hedge(inv.coin_flat, per_unit)
                if equity is not None:
                    usd_flat = _future_hedge(inv.usd_flat, per_unit)
            else:
                delta_hedge = _future_hedge(hedge.linear_hedge(delta, h.contract), per_unit)
            if len(h.instruments) > 1:
                cols = [_FIG["delta_adj" if h.inverse else "delta"], _FIG["gamma"], _FIG["vega"]]
                targets = ("gamma",) if len(h.instruments) == 2 else ("gamma", "vega")
                oh = hedge.option_hedge(
                    np.array([delta, fig[_FIG["gamma"]], fig[_FIG["vega"]]]),
                    h.units[1:, cols],
                    targets,
                    cfg.hedge_option_lot,
                    future_delta,
                )
                option_hedge = OptionHedge(
                    targets=list(targets),
                    quantity=_floats(oh.quantity),
                    quantity_rounded=_floats(oh.rounded),
                    future=None if oh.future is None else _future_hedge(oh.future, per_unit),
                    residual=_residual(oh.residual),
                    residual_rounded=_residual(oh.residual_rounded),
                    singular=bool(oh.singular),
                )
        out.append(
            HedgePayload(
                ts_ns=now_ns,
                valuation_ts_ns=br.valuation_ns,
                book=br.book,
                underlying=und,
                future=h.instruments[0],
                options=h.instruments[1:],
                delta=delta,
                delta_hedge=delta_hedge,
                usd_flat=usd_flat,
                option_hedge=option_hedge,
                hedge_contracts=None if delta_hedge is None else delta_hedge.contracts,
                hedge_residual_delta=None if delta_hedge is None else delta_hedge.residual_delta,
                status=status,
                units=_HEDGE_UNITS,
            )
        )
    return out


_HEDGE_UNITS: Final = {
    "delta": "underlying units (delta_adj for an inverse future)",
    "hedge_contracts": "contracts: delta_hedge.contracts",
    "hedge_residual_delta": "underlying units: delta_hedge.residual_delta",
    "contracts": "contracts of the instrument (inverse: of hedge_contract_usd USD; linear: of "
    "its multiplier)",
    "quantity": "position quantity, as the positions file counts it (inverse futures: USD)",
    "residual_delta": "underlying units",
    "residual": "delta underlying units, gamma per 1 unit move, vega USD per vol point",
}


def skew_payloads(
    chains: list[Chain], smile_quotes: dict[str, int], now_ns: int, valuation_ns: int
) -> tuple[list[tuple[str, SmilePayload | TermStructurePayload]], list[tuple[str, float, float]]]:
    """The ``skew`` payloads (docs/skew.md): per chain (key ``{underlying}:{expiry}``) its SVI
    fit, arbitrage checks and 25-delta profile; per underlying (key ``{underlying}``) the ATM
    term structure of its fitted chains. Also the smile vols for held options without a usable
    quote of their own: (instrument, vol, forward).

    Args:
        chains: :meth:`engine.state.Portfolio.chains`.
        smile_quotes: instrument -> receipt time of the smile quote the daemon gave it; an
            option whose last quote is that one is fitted as unquoted.
        now_ns: the payloads' time. valuation_ns: the chains' valuation time.
    """
    payloads: list[tuple[str, SmilePayload | TermStructurePayload]] = []
    smile: list[tuple[str, float, float]] = []
    fits: dict[str, list[tuple[str, skew.SviFit]]] = {}
    for c in chains:
        own = np.array(
            [
                smile_quotes.get(n) != t
                for n, t in zip(c.instruments, c.quote_ns.tolist(), strict=True)
            ]
        )
        quoted = own & np.isfinite(c.sigma)
        F = float(np.median(c.forward[quoted])) if quoted.any() else math.nan
        T = float(np.median(c.T[quoted])) if quoted.any() else math.nan
        fit = (
            skew.fit_svi(c.strike, np.where(quoted, c.sigma, np.nan), F, T)
            if quoted.any()
            else None
        )
        payload = _smile(c, F, T, quoted, fit, now_ns, valuation_ns)
        payloads.append((f"{c.underlying}:{c.expiry}", payload))
        if fit is None or fit.params is None:
            continue
        fits.setdefault(c.underlying, []).append((c.expiry, fit))
        need = c.held & ~quoted
        if need.any():
            vols = skew.vol_at(fit, c.strike[need])
            names = [n for n, k in zip(c.instruments, need.tolist(), strict=True) if k]
            smile += [(n, float(v), F) for n, v in zip(names, vols.tolist(), strict=True)]
    for und, items in fits.items():
        term = skew.atm_term_structure(f for _, f in items)
        term_payload = TermStructurePayload(
            ts_ns=now_ns,
            valuation_ts_ns=valuation_ns,
            underlying=und,
            expiries=[e for _, e in sorted((f.T, e) for e, f in items)],
            tte_years=_floats(term.T),
            atm_vol=_floats(term.atm_vol),
            forward_vol=_floats(term.forward_vol),
            units=_TERM_UNITS,
        )
        payloads.append((und, term_payload))
    return payloads, smile


_TERM_UNITS: Final = {"T": "years", "atm_vol": "decimal", "forward_vol": "decimal"}


SMILE_POINTS: Final = 41
"""Strikes of a payload's fitted smile: evenly in ln(K/F) over the quotes' range and a tenth of
it beyond each end."""


def _smile_points(
    c: Chain, quoted: npt.NDArray[np.bool_], fit: skew.SviFit | None
) -> tuple[list[float], list[float], list[float], list[float]]:
    """The quotes a chain's fit took (strike, vol; by strike) and the fitted smile on a grid of
    strikes over their range (none without a fit)."""
    ok = quoted & np.isfinite(c.strike) & (c.strike > 0.0) & np.isfinite(c.sigma) & (c.sigma > 0.0)
    order = np.argsort(c.strike[ok], kind="stable")
    strikes, vols = c.strike[ok][order], c.sigma[ok][order]
    if fit is None or fit.params is None or not strikes.size:
        return _floats(strikes), _floats(vols), [], []
    lo, hi = np.log(strikes[0] / fit.F), np.log(strikes[-1] / fit.F)
    pad = 0.1 * (hi - lo) if hi > lo else 0.1
    grid = fit.F * np.exp(np.linspace(lo - pad, hi + pad, SMILE_POINTS))
    return _floats(strikes), _floats(vols), _floats(grid), _floats(skew.vol_at(fit, grid))


def _smile(
    c: Chain,
    F: float,
    T: float,
    quoted: npt.NDArray[np.bool_],
    fit: skew.SviFit | None,
    now_ns: int,
    valuation_ns: int,
) -> SmilePayload:
    """A chain's payload: its fit, checks and profile (nulls where there is none), the quotes
    it took and the fitted smile."""
    quote_strikes, quote_vols, fit_strikes, fit_vols = _smile_points(c, quoted, fit)
    params = None if fit is None else fit.params
    chk = None if fit is None or params is None else fit.butterfly
    prof = (
        None
        if fit is None or params is None
        else skew.skew_profile(fit, coin_settled=c.coin_settled)
    )
    if fit is None:
        status = skew.SmileStatus.TOO_FEW_STRIKES.value
    else:
        status = (fit.status if prof is None else prof.status).value

    profile: list[float | None] = [None] * 7
    if prof is not None:
        profile = [
            float(x)
            for x in (
                prof.atm_vol,
                prof.risk_reversal,
                prof.butterfly,
                prof.call25_strike,
                prof.call25_vol,
                prof.put25_strike,
                prof.put25_vol,
            )
        ]
    atm_vol, rr25, bf25, call25_strike, call25_vol, put25_strike, put25_vol = profile
    return SmilePayload(
        ts_ns=now_ns,
        valuation_ts_ns=valuation_ns,
        underlying=c.underlying,
        expiry=c.expiry,
        coin_settled=c.coin_settled,
        forward=F,
        tte_years=T,
        n_quotes=int(quoted.sum()),
        quote_strikes=quote_strikes,
        quote_vols=quote_vols,
        fit_strikes=fit_strikes,
        fit_vols=fit_vols,
        atm_vol=atm_vol,
        rr25=rr25,
        bf25=bf25,
        call25_strike=call25_strike,
        call25_vol=call25_vol,
        put25_strike=put25_strike,
        put25_vol=put25_vol,
        svi=None
        if params is None
        else Svi(a=params.a, b=params.b, rho=params.rho, m=params.m, sigma=params.sigma),
        rmse_vol_points=None if fit is None or params is None else float(fit.rmse_vol_points),
        butterfly=None
        if chk is None
        else SmileButterfly(
            g_min=float(chk.g_min),
            k_at_g_min=float(chk.k_at_g_min),
            wing_slope=float(chk.wing_slope),
            arbitrage_free=bool(chk.arbitrage_free),
        ),
        delta_convention="forward, premium-adjusted" if c.coin_settled else "forward",
        units=_SKEW_UNITS,
        status=status,
    )


_SKEW_UNITS: Final = {
    "forward": "USD (the quote currency)",
    "T": "years",
    "atm_vol": "decimal",
    "rr25": "decimal (call25_vol - put25_vol)",
    "bf25": "decimal ((call25_vol + put25_vol) / 2 - atm_vol)",
    "call25_vol": "decimal",
    "put25_vol": "decimal",
    "call25_strike": "USD",
    "put25_strike": "USD",
    "svi": "raw SVI of total variance in k = ln(K/F)",
    "rmse_vol_points": "vol points",
}


_N_FIG: Final = len(AGG_FIELDS) - 3  # the figures of a unit row: all but pnl and the counts
_MARKET_VALUE: Final = AGG_FIELDS.index("market_value")
PAYOFF_POINTS: Final = 61
"""Underlying prices of a payoff diagram: from half the lowest strike (or price) to 1.5 times
the highest."""


def strategy_payload(
    h: StrategyHolding,
    legs: Priced,
    index_price: float,
    cfg: RiskConfig,
    now_ns: int,
    *,
    valuation_ns: int,
) -> StrategyPayload:
    """The ``strategy`` payload of one holding: its figures (the legs' figures per unit,
    weighted by their ratios, times the quantity: units of the exposures), its value and P&L
    against its cost (USD), its portfolio margin alone, and its payoff diagram at the first
    expiry (one unit, entered at the legs' model prices now; scaled by the quantity).
    ``valuation_ns``: the time the legs were priced at."""
    strategy = h.strategy
    first = strategy.legs[0].instrument
    missing = [n for n, ok in zip(legs.names, legs.ok.tolist(), strict=True) if not ok]
    priced = not missing and index_price > 0.0
    figures: list[float | None] = [None] * _N_FIG
    pnl = margin_im = margin_mm = None
    payoff = None
    if priced:
        greeks = strategy_greeks(strategy, legs.units.T, h.quantity)
        figures = greeks.tolist()
        X = legs.positions.X
        cost_usd = h.cost * (float(X[0]) if h.coin else 1.0)  # coin valued at the forward
        pnl = float(greeks[_MARKET_VALUE]) - cost_usd if h.has_cost else None
        ratios = np.array([leg.ratio for leg in strategy.legs])
        book = legs.positions._replace(weight=legs.positions.weight * ratios * h.quantity)
        pm = margin.deribit_portfolio_margin(book, [index_price], cfg.pm_params(first.underlying))
        margin_im = float(pm.margin.initial_usd[0])
        margin_mm = float(pm.margin.maintenance_usd[0])
        payoff = _payoff(h, legs, valuation_ns)
    delta, delta_usd, delta_adj, gamma, cash_gamma, vega, theta, rho, vanna, volga, mv = figures
    return StrategyPayload(
        ts_ns=now_ns,
        valuation_ts_ns=valuation_ns,
        book=h.book,
        strategy=h.text,
        kind=str(strategy.kind),
        underlying=first.underlying,
        legs=[
            StrategyLeg(instrument=leg.instrument.name, ratio=leg.ratio) for leg in strategy.legs
        ],
        quantity=h.quantity,
        cost=h.cost if h.has_cost else None,
        cost_currency="coin" if h.coin else "USD",
        status="ok" if priced else f"no price for {', '.join(missing) or first.index}",
        delta=delta,
        delta_usd=delta_usd,
        delta_adj=delta_adj,
        gamma=gamma,
        cash_gamma=cash_gamma,
        vega=vega,
        theta=theta,
        rho=rho,
        vanna=vanna,
        volga=volga,
        market_value=mv,
        pnl=pnl,
        margin_im=margin_im,
        margin_mm=margin_mm,
        payoff=payoff,
        units=_STRATEGY_UNITS,
    )


def _payoff(h: StrategyHolding, legs: Priced, valuation_ns: int) -> Payoff:
    """The payoff diagram of one unit bought at the model's prices now (each in its leg's price
    currency), scaled by the holding's quantity: at the first expiry and at ``valuation_ns``."""
    X = legs.positions.X
    option = legs.positions.kind == kernels.KIND_OPTION
    per_unit = legs.units[:, _MARKET_VALUE] / legs.positions.weight
    entry = np.where(option, per_unit / np.where(legs.positions.inverse, X, 1.0), X)
    marks = np.where(option, legs.positions.strike, X)
    S = np.linspace(0.5 * marks.min(), 1.5 * marks.max(), PAYOFF_POINTS)
    try:
        d = payoff_diagram(h.strategy, S, entry, legs.positions.sigma, now_ns=valuation_ns)
    except ValueError as exc:  # e.g. no leg with an expiry
        return Payoff(
            status=str(exc),
            expiry_ns=None,
            S=None,
            pnl=None,
            pnl_now=None,
            breakevens=None,
            max_profit=None,
            max_loss=None,
            entry=None,
        )
    return Payoff(
        status="ok",
        expiry_ns=d.expiry_ns,
        S=_floats(d.S),
        pnl=_floats(d.pnl * h.quantity),
        pnl_now=None if d.pnl_now is None else _floats(d.pnl_now * h.quantity),
        breakevens=_floats(d.breakevens),
        max_profit=float(d.max_profit * abs(h.quantity)),
        max_loss=float(d.max_loss * abs(h.quantity)),
        entry="the legs' model prices now",
    )


_STRATEGY_UNITS: Final = {
    **{k: v for k, v in UNITS.items() if k in AGG_FIELDS[:_N_FIG]},
    "pnl": "USD: value now minus the cost (a coin cost at the first leg's forward); futures "
    "legs count no value",
    "cost": "cost_currency: the net premium of the fills, quantity x price",
    "margin_im": "USD: Deribit-style portfolio margin of the legs alone",
    "margin_mm": "USD",
    "payoff": "S: USD; pnl, max_profit, max_loss: USD at the first expiry (null: unbounded)",
}


# ---------------------------------------------------------------- a risk period's payloads


def hedge_inputs(
    cfg: RiskConfig, portfolio: Portfolio, lookup: Callable[[str], Instrument | None]
) -> dict[str, HedgeInputs]:
    """Each configured hedge's instruments (``hedge_future``, ``hedge_options``), priced now.

    Raises:
        ValueError: a hedge future that ``lookup`` does not know (the configuration's check
            at start-up rules it out).
    """
    out = {}
    for und, future in cfg.hedge_future.items():
        names = [future, *cfg.hedge_options.get(und, [])]
        priced = portfolio.priced(names)
        inst = lookup(future)
        if inst is None:
            raise ValueError(f"unknown hedge future {future!r}")
        contract = (
            cfg.hedge_contract_usd.get(und, hedge.DERIBIT_INVERSE_CONTRACT_USD.get(und, 10.0))
            if inst.is_inverse
            else inst.multiplier
        )
        out[und] = HedgeInputs(
            und, names, priced.units, priced.positions.X, inst.is_inverse, contract
        )
    return out


def risk_payloads(
    books: list[BookRisk],
    hedges: dict[str, HedgeInputs],
    held: list[tuple[StrategyHolding, Priced, float]],
    history: MoveHistory,
    cfg: RiskConfig,
    families: Iterable[str],
    now_ns: int,
    valuation_ns: int,
    holdings: Sequence[StrategyHolding] = (),
    common: CommonVectors | None = None,
) -> list[tuple[str, Payload]]:
    """The due ``families`` of risk payloads of every book and strategy held, each with its
    key (docs/redis.md); what they need was copied from the portfolio beforehand, so this may
    run in a worker thread. ``holdings``: copies of the strategy holdings (the US margin's).
    ``common``: the books on the common scenario set, when ``scenario_underlyings`` is set
    (computed here when not given)."""
    wanted = set(families)
    out: list[tuple[str, Payload]] = [
        (
            f"{h.book}:{h.text}",
            strategy_payload(h, legs, px, cfg, now_ns, valuation_ns=valuation_ns),
        )
        for h, legs, px in held
    ]
    stress = iter(stress_payloads(books, cfg, now_ns) if "stress" in wanted else [])
    per_book_var = "var" in wanted and not cfg.scenario_underlyings
    scenarios = scenario_vars(books, history, cfg) if per_book_var else {}
    for k, br in enumerate(books):
        out += [(f"{br.book}:{h.underlying}", h) for h in hedge_payloads(br, hedges, cfg, now_ns)]
        if per_book_var:
            out.append((br.book, var_payload(br, history, cfg, now_ns, scenarios.get(k))))
        if "stress" in wanted:
            out.append((br.book, next(stress)))
    if "margin" in wanted:
        out += [(p.book, p) for p in margin_payloads(books, cfg, now_ns, holdings)]
    if "var" in wanted and cfg.scenario_underlyings:
        settings = cfg.var_settings()
        if common is None:
            common = common_vectors(books, history, settings)
        out += var_payloads(common, settings, now_ns)
    return out


VOL_LEVEL_DAYS: Final = 7.0
"""The vol level of an underlying is the ATM vol of its first fitted expiry at least this many
days away (else of its last): short expiries' vols jump as they near expiry."""


def vol_level(term: TermStructurePayload) -> float | None:
    """An underlying's vol level from its ATM term structure (None: no fit): what the window
    of moves records beside its price (:class:`~engine.risk.history.MoveHistory`)."""
    pairs = [
        (t, v)
        for t, v in zip(term.tte_years, term.atm_vol, strict=True)
        if math.isfinite(v) and v > 0.0
    ]
    if not pairs:
        return None
    far = [v for t, v in pairs if t * 365.0 >= VOL_LEVEL_DAYS]
    return far[0] if far else pairs[-1][1]
