"""Threshold alerts on exposure figures, and the stale-feed alert: a pure state machine.

:class:`AlertRule` (configuration) says which figure to watch, at which scope, and where its
limits are; :class:`AlertEngine` keeps one state per (rule, scope key) and turns the payloads the
engine publishes (typed: each rule reads its figure as an attribute of the payload that carries
it) into *transitions*: :class:`engine.outputs.AlertPayload` s with ``state`` ``raised`` or
``cleared``, ready for :meth:`engine.outputs.Sink.alert`. Time comes in with the payloads
(``ts_ns``) or as ``now_ns``; nothing here reads a clock.

Semantics of a rule with ``above`` (``below`` is the mirror image)::

    value > above                        -> raised (unless within cooldown_s of the last raise)
    value < above - hysteresis           -> cleared (always, cooldown does not hold clears back)
    above - hysteresis <= value <= above -> no change (the band that stops flapping)
    value None or NaN                    -> no change

A rule with both ``above`` and ``below`` watches a corridor: leaving it on one side raises with
``"direction"`` naming that side; jumping straight across clears one side and raises the other.

Transitions alternate per (rule, key): ``raised``, ``cleared``, ``raised``, ... and a ``cleared``
always follows a ``raised``. Alert ids are stable (``{rule}:{book}[:{underlying}[:{expiry}]]``,
``stale_feed:{feed}``), so a consumer can key its own state on them (Redis ``risk:alerts:active``).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, get_args, get_type_hints

import msgspec

from engine.constraints import NonNegativeFloat
from engine.outputs import (
    BOOK_METRICS,
    METRICS,
    RISK_METRICS,
    RISK_UNITS,
    UNITS,
    AlertPayload,
    AlertState,
    BookExposure,
    CapitalPayload,
    CptPayload,
    CrossHedgePayload,
    Direction,
    ExpiryColumns,
    HedgePayload,
    LiquidityPayload,
    MarginPayload,
    Payload,
    PositioningPayload,
    Scope,
    Severity,
    SlippagePayload,
    SmilePayload,
    StrategyPayload,
    StressPayload,
    UnderlyingExposure,
    VarPayload,
)

__all__ = [
    "ALERT_METRICS",
    "MARKET_BOOK",
    "STALE_FEED",
    "AlertEngine",
    "AlertMetric",
    "AlertRule",
    "Severity",
]

AlertMetric = Literal[
    "delta",
    "delta_usd",
    "delta_adj",
    "gamma",
    "cash_gamma",
    "vega",
    "theta",
    "rho",
    "vanna",
    "volga",
    "market_value",
    "pnl",
    "n_stale",
    "n_positions",
    "var",
    "es",
    "var_delta_normal",
    "es_delta_normal",
    "var_delta_gamma",
    "es_delta_gamma",
    "var_historical",
    "es_historical",
    "var_monte_carlo",
    "es_monte_carlo",
    "stress_loss",
    "margin_im",
    "margin_mm",
    "margin_span",
    "margin_standard_im",
    "margin_savings",
    "margin_utilisation",
    "margin_mm_utilisation",
    "margin_reg_t",
    "margin_reg_t_deposit",
    "margin_us_portfolio",
    "margin_cme_span",
    "hedge_contracts",
    "hedge_residual_delta",
    "capital_usd",
    "capital_utilisation",
    "exit_cost_usd",
    "liquidity_cost_usd",
    "lvar",
    "les",
    "lvar_delta_normal",
    "les_delta_normal",
    "lvar_delta_gamma",
    "les_delta_gamma",
    "lvar_historical",
    "les_historical",
    "lvar_monte_carlo",
    "les_monte_carlo",
    "slippage_usd",
    "beta_delta_total",
    "beta_gamma_total",
    "beta_delta_usd",
    "hedge_r2",
    "cpt_value",
    "cpt_certainty_equivalent",
    "atm_vol",
    "rr25",
    "bf25",
    "gex_total",
    "gex_change_window",
    "spot_minus_zero_gamma",
    "put_call_oi",
    "put_call_volume",
    "oi_change_window",
]
"""What a rule may watch: an exposure figure (:data:`engine.outputs.METRICS`), a count, or a
risk figure (:data:`engine.outputs.RISK_METRICS`, at its own scope only)."""

ALERT_METRICS: Final = (*METRICS, "n_stale", "n_positions", *RISK_METRICS)
"""The values of :data:`AlertMetric`, in order (a unit test keeps the two in step)."""

STALE_FEED: Final = "stale_feed"
"""The ``"alert"`` name of the stale-feed alert (reserved: no rule may take it)."""

_COUNT_UNIT: Final = "count"
_NS_PER_S: Final = 1_000_000_000

_NAME_PATTERN: Final = r"^[A-Za-z0-9_.\-]+$"
_NAME: Final = re.compile(_NAME_PATTERN)
RuleName = Annotated[str, msgspec.Meta(pattern=_NAME_PATTERN)]


class AlertRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A threshold on one figure at one scope.

    Attributes:
        name: the rule's name: letters, digits, ``_``, ``.``, ``-`` (it starts every alert id,
            so it must be unique among the rules and not ``stale_feed``).
        metric: the figure watched (:data:`AlertMetric`), in its own units
            (:data:`engine.outputs.UNITS` and :data:`engine.outputs.RISK_METRICS`; ``n_stale``
            and ``n_positions`` count).
        scope: the aggregation level whose figures the rule sees.
        book: only this book (None: every book).
        underlying: only this underlying (None: every one; not at book scope).
        expiry: only this expiry (None: every one; expiry scope only).
        strategy: only this strategy, by its text form (None: every one; strategy scope only).
        above: raise when the figure exceeds this (None: no upper limit).
        below: raise when the figure falls under this (None: no lower limit). At least one of
            ``above`` and ``below`` is set; with both, ``below < above``.
        hysteresis: how far back inside the limit the figure must come to clear, in the
            figure's units (absolute, >= 0).
        cooldown_s: after a raise, the same rule and key does not raise again for this many
            seconds, even if it cleared meanwhile (>= 0); clears are never held back.
        severity: ``info``, ``warning`` or ``critical``.

    Raises:
        ValueError: no limit, a non-finite limit, ``below >= above``, a negative hysteresis or
            cooldown, a bad or reserved name, a metric outside :data:`AlertMetric`, or a filter
            the scope does not have (inside ``msgspec.convert``: ``msgspec.ValidationError``).
    """

    name: RuleName
    metric: AlertMetric
    scope: Scope
    book: str | None = None
    underlying: str | None = None
    expiry: str | None = None
    strategy: str | None = None
    above: float | None = None
    below: float | None = None
    hysteresis: NonNegativeFloat = 0.0
    cooldown_s: NonNegativeFloat = 0.0
    severity: Severity = "warning"

    def __post_init__(self) -> None:
        # msgspec checks the annotations when it decodes; these checks also cover direct
        # construction (rules built in code and in tests).
        where = f"alert rule {self.name!r}"
        if _NAME.fullmatch(self.name) is None:
            raise ValueError(f"{where}: a name is letters, digits, '_', '.' or '-'")
        if self.name == STALE_FEED:
            raise ValueError(f"{where}: the name {STALE_FEED!r} is reserved")
        if self.metric not in ALERT_METRICS:
            expected = ", ".join(ALERT_METRICS)
            raise ValueError(f"{where}: unknown metric {self.metric!r}, expected one of {expected}")
        if self.scope not in _SCOPES:
            raise ValueError(f"{where}: unknown scope {self.scope!r}")
        if self.scope == "strategy" and self.metric not in METRICS:
            raise ValueError(
                f"{where}: a strategy-scope rule takes an exposure figure: {', '.join(METRICS)}"
            )
        if self.scope != "strategy" and self.strategy is not None:
            raise ValueError(f"{where}: only a strategy-scope rule can filter on `strategy`")
        if self.scope == "book" and self.metric in METRICS and self.metric not in BOOK_METRICS:
            raise ValueError(
                f"{where}: {self.metric} is in underlying units, which do not add across "
                f"underlyings: a book-scope rule takes one of {', '.join(BOOK_METRICS)}"
            )
        risk = RISK_METRICS.get(self.metric)
        if risk is not None and self.scope != risk[0]:
            raise ValueError(f"{where}: {self.metric} is published at {risk[0]} scope only")
        if risk is not None and risk[0] == "expiry" and self.book is not None:
            raise ValueError(f"{where}: {self.metric} is a market figure of no book")
        if self.scope == "book" and self.underlying is not None:
            raise ValueError(f"{where}: a book-scope rule cannot filter on `underlying`")
        if self.scope != "expiry" and self.expiry is not None:
            raise ValueError(f"{where}: only an expiry-scope rule can filter on `expiry`")
        if self.above is None and self.below is None:
            raise ValueError(f"{where}: set `above`, `below`, or both")
        for field, limit in (("above", self.above), ("below", self.below)):
            if limit is not None and not math.isfinite(limit):
                raise ValueError(f"{where}: `{field}` must be finite, got {limit}")
        if self.above is not None and self.below is not None and self.below >= self.above:
            raise ValueError(f"{where}: need below < above, got {self.below} >= {self.above}")
        if not self.hysteresis >= 0.0 or not math.isfinite(self.hysteresis):
            raise ValueError(f"{where}: hysteresis must be finite and >= 0, got {self.hysteresis}")
        if not self.cooldown_s >= 0.0 or not math.isfinite(self.cooldown_s):
            raise ValueError(f"{where}: cooldown_s must be finite and >= 0, got {self.cooldown_s}")


@dataclass(slots=True)
class _Compiled:
    """A rule flattened for the hot path (no attribute chains, limits as plain floats)."""

    rule: AlertRule
    metric: str
    get: Callable[[Any], Any]  # the payload (or expiry columns) -> the figure (or its column)
    book: str | None
    underlying: str | None
    expiry: str | None
    above: float  # +inf when unset: `value > above` is then never true
    below: float  # -inf when unset
    clear_above: float  # above - hysteresis
    clear_below: float  # below + hysteresis
    cooldown_ns: int
    unit: str


@dataclass(slots=True)
class _State:
    """One (rule, key): the side it is raised on (None: cleared) and when it last raised."""

    direction: Direction | None
    last_raise_ns: int
    payload: AlertPayload | None  # the latest raised payload while raised


class AlertEngine:
    """Evaluates :class:`AlertRule` s on the payloads the engine publishes and tracks the
    stale-feed alert.

    Not thread-safe; the engine calls it from its one loop.

    Args:
        rules: the rules; their names must be unique.
        stale_severity: severity of the stale-feed alert.

    Raises:
        ValueError: two rules share a name.
    """

    __slots__ = ("_active", "_by_source", "_stale", "_stale_severity", "_states")

    def __init__(
        self, rules: Iterable[AlertRule], *, stale_severity: Severity = "critical"
    ) -> None:
        rules = tuple(rules)
        names = [r.name for r in rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"alert rule names must be unique: {', '.join(duplicates)}")
        if stale_severity not in ("info", "warning", "critical"):
            raise ValueError(f"unknown severity {stale_severity!r}")
        self._stale_severity: Severity = stale_severity
        by_source: dict[type, list[_Compiled]] = {}
        for r in rules:
            by_source.setdefault(_source(r), []).append(_compile(r))
        self._by_source = {t: tuple(cs) for t, cs in by_source.items()}
        self._states: dict[tuple[str, str, str | None, str | None], _State] = {}
        self._stale: dict[str, AlertPayload] = {}
        self._active: dict[str, AlertPayload] = {}

    def check(self, payload: Payload) -> list[AlertPayload]:
        """Check the figures of ``payload`` against the rules that watch them: an exposure's
        (and, for expiry-scope rules, each of its expiry buckets'), a risk payload's, a
        strategy's. The payload's ``ts_ns`` stamps the transitions and drives cooldowns.

        Returns:
            The transitions, oldest first (usually none): alert payloads for
            :meth:`engine.outputs.Sink.alert`.
        """
        out: list[AlertPayload] = []
        rules = self._by_source.get(type(payload))
        if rules:
            scope, book, und, third = _scope_key(payload)
            self._evaluate(rules, scope, book, und, third, payload, -1, payload, out)
        if isinstance(payload, UnderlyingExposure):
            rows = self._by_source.get(ExpiryColumns)
            if rows:
                cols = payload.expiries
                for i, expiry in enumerate(cols.expiry):
                    self._evaluate(
                        rows,
                        "expiry",
                        payload.book,
                        payload.underlying,
                        expiry,
                        cols,
                        i,
                        payload,
                        out,
                    )
        return out

    def _evaluate(
        self,
        rules: tuple[_Compiled, ...],
        scope: Scope,
        book: str,
        underlying: str | None,
        third: str | None,
        source: object,
        row: int,
        payload: Payload,
        out: list[AlertPayload],
    ) -> None:
        """The rules of one scope key: each reads its figure from ``source`` (at ``row`` of its
        column when ``row`` >= 0); a missing, None or NaN figure changes nothing. ``third``:
        the expiry, or at strategy scope the strategy's text form."""
        states = self._states
        for c in rules:
            if (
                (c.book is not None and c.book != book)
                or (c.underlying is not None and c.underlying != underlying)
                or (c.expiry is not None and c.expiry != third)
            ):
                continue
            value = c.get(source) if row < 0 else c.get(source)[row]
            if value is None or value != value:  # missing or NaN: no information
                continue
            key = (book, underlying, third)
            state = states.get((c.rule.name, *key))
            if state is None or state.direction is None:
                if value > c.above:
                    self._raise(c, state, "above", scope, key, value, payload, out)
                elif value < c.below:
                    self._raise(c, state, "below", scope, key, value, payload, out)
            elif state.direction == "above":
                if value < c.clear_above:
                    self._clear(c, state, scope, key, value, payload, out)
                    if value < c.below:  # straight across the corridor
                        self._raise(c, state, "below", scope, key, value, payload, out)
            elif value > c.clear_below:
                self._clear(c, state, scope, key, value, payload, out)
                if value > c.above:  # straight across the corridor
                    self._raise(c, state, "above", scope, key, value, payload, out)

    def feed_stale(
        self, feed: str, stale: bool, silent_s: float, now_ns: int
    ) -> list[AlertPayload]:
        """Raise the stale-feed alert when ``feed`` goes stale, clear it when it comes back.

        Repeated calls with the same ``stale`` change nothing. No cooldown applies: the feed's
        own restart timeout paces these calls.

        Args:
            feed: the feed's configured name (the alert id is ``stale_feed:{feed}``).
            stale: whether the feed is stale now.
            silent_s: seconds since the feed's last message (the payload's ``"value"``).
            now_ns: the current time, int UNIX ns.

        Returns:
            The transition (a list of at most one payload).
        """
        raised = feed in self._stale
        if stale == raised:
            return []
        alert_id = f"{STALE_FEED}:{feed}"
        payload = AlertPayload(
            ts_ns=now_ns,
            valuation_ts_ns=None,
            id=alert_id,
            alert=STALE_FEED,
            state="raised" if stale else "cleared",
            severity=self._stale_severity,
            metric="silent_s",
            scope="feed",
            feed=feed,
            book=None,
            underlying=None,
            expiry=None,
            strategy=None,
            value=float(silent_s),
            threshold=None,
            direction="above",
            unit="s",
        )
        if stale:
            self._stale[feed] = payload
            self._active[alert_id] = payload
        else:
            del self._stale[feed]
            del self._active[alert_id]
        return [payload]

    def active(self) -> list[AlertPayload]:
        """The alerts raised now: the latest ``raised`` payload of each, in the order raised."""
        return list(self._active.values())

    def stale_feeds(self) -> list[str]:
        """The feeds whose stale-feed alert is raised now, in the order raised."""
        return list(self._stale)

    def _raise(
        self,
        c: _Compiled,
        state: _State | None,
        direction: Direction,
        scope: Scope,
        key: tuple[str, str | None, str | None],
        value: float,
        source: Payload,
        out: list[AlertPayload],
    ) -> None:
        now_ns = source.ts_ns
        if state is not None and 0 <= now_ns - state.last_raise_ns < c.cooldown_ns:
            return  # cooling down: raise later if the figure is still out then
        # (a clock stepped back before the last raise ends the cooldown: it would last the step)
        payload = _payload(c, "raised", direction, scope, key, value, source)
        if state is None:
            self._states[(c.rule.name, *key)] = _State(direction, now_ns, payload)
        else:
            state.direction = direction
            state.last_raise_ns = now_ns
            state.payload = payload
        self._active[payload.id] = payload
        out.append(payload)

    def _clear(
        self,
        c: _Compiled,
        state: _State,
        scope: Scope,
        key: tuple[str, str | None, str | None],
        value: float,
        source: Payload,
        out: list[AlertPayload],
    ) -> None:
        direction = state.direction or "above"  # always set: only raised states are cleared
        payload = _payload(c, "cleared", direction, scope, key, value, source)
        state.direction = None
        state.payload = None
        self._active.pop(payload.id, None)
        out.append(payload)


_SCOPES: Final = ("book", "underlying", "expiry", "strategy")

MARKET_BOOK: Final = "*"
"""The ``book`` of a market figure's alert (``atm_vol``, ``rr25``, ``bf25``, the positioning
figures: of no book)."""

_EXPOSURE_SOURCES: Final[dict[str, type[msgspec.Struct]]] = {
    "book": BookExposure,
    "underlying": UnderlyingExposure,
    "expiry": ExpiryColumns,  # the rows of an UnderlyingExposure's expiries
    "strategy": StrategyPayload,
}

_RISK_SOURCES: Final[dict[str, type[msgspec.Struct]]] = {
    **{m: VarPayload for m in RISK_METRICS if m in ("var", "es") or m.startswith(("var_", "es_"))},
    "stress_loss": StressPayload,
    **{m: MarginPayload for m in RISK_METRICS if m.startswith("margin_")},
    "capital_usd": CapitalPayload,
    "capital_utilisation": CapitalPayload,
    "hedge_contracts": HedgePayload,
    "hedge_residual_delta": HedgePayload,
    "exit_cost_usd": LiquidityPayload,
    "liquidity_cost_usd": LiquidityPayload,
    **{m: LiquidityPayload for m in RISK_METRICS if m in ("lvar", "les")},
    **{m: LiquidityPayload for m in RISK_METRICS if m.startswith(("lvar_", "les_"))},
    "slippage_usd": SlippagePayload,
    "beta_delta_total": CrossHedgePayload,
    "beta_gamma_total": CrossHedgePayload,
    "beta_delta_usd": CrossHedgePayload,
    "hedge_r2": CrossHedgePayload,
    "cpt_value": CptPayload,
    "cpt_certainty_equivalent": CptPayload,
    "atm_vol": SmilePayload,
    "rr25": SmilePayload,
    "bf25": SmilePayload,
    "gex_total": PositioningPayload,
    "gex_change_window": PositioningPayload,
    "spot_minus_zero_gamma": PositioningPayload,
    "put_call_oi": PositioningPayload,
    "put_call_volume": PositioningPayload,
    "oi_change_window": PositioningPayload,
}
"""The payload that carries each risk figure (a field of that name, or at
:data:`_RISK_PATHS`)."""

_RISK_PATHS: Final[dict[str, tuple[str, ...]]] = {
    "hedge_r2": ("hedge", "r2"),  # null hedge: no figure
    "cpt_value": ("value",),
    "cpt_certainty_equivalent": ("certainty_equivalent",),
}
"""Where a risk figure whose name is not its payload's field lives: attribute names from the
payload down (a None on the way: no figure)."""


def _path(metric: str) -> tuple[str, ...]:
    return _RISK_PATHS.get(metric, (metric,))


def _fields(t: type[msgspec.Struct], path: tuple[str, ...]) -> bool:
    """Whether ``path`` names fields of ``t`` (and of the Structs on the way) down to the end."""
    for i, name in enumerate(path):
        if name not in t.__struct_fields__:
            return False
        if i + 1 < len(path):
            inner = next(
                (a for a in get_args(get_type_hints(t)[name]) if isinstance(a, type)), None
            )
            if inner is None or not issubclass(inner, msgspec.Struct):
                return False
            t = inner
    return True


if set(_RISK_SOURCES) != set(RISK_METRICS) or any(
    not _fields(t, _path(m)) for m, t in _RISK_SOURCES.items()
):
    raise ImportError("engine.alerts: a risk figure without the payload field that carries it")


def _source(rule: AlertRule) -> type[msgspec.Struct]:
    """The payload type whose figures ``rule`` reads (an exposure figure: the scope's)."""
    return _RISK_SOURCES.get(rule.metric) or _EXPOSURE_SOURCES[rule.scope]


def _getter(metric: str) -> Callable[[Any], Any]:
    """Reads ``metric`` from its payload (None when a Struct on its path is null)."""
    path = _path(metric)
    if len(path) == 1:
        return operator.attrgetter(path[0])

    def get(source: Any) -> Any:
        for name in path:
            if source is None:
                return None
            source = getattr(source, name)
        return source

    return get


def _scope_key(p: Payload) -> tuple[Scope, str, str | None, str | None]:
    """The scope and key (book, underlying, expiry or strategy) of a payload rules read."""
    if isinstance(p, UnderlyingExposure | HedgePayload | SlippagePayload):
        return "underlying", p.book, p.underlying, None
    if isinstance(p, StrategyPayload):
        return "strategy", p.book, p.underlying, p.strategy
    if isinstance(p, SmilePayload | PositioningPayload):
        return "expiry", MARKET_BOOK, p.underlying, p.expiry
    if isinstance(
        p,
        BookExposure
        | VarPayload
        | StressPayload
        | MarginPayload
        | CapitalPayload
        | LiquidityPayload
        | CrossHedgePayload
        | CptPayload,
    ):
        return "book", p.book, None, None
    raise TypeError(f"no alert rule reads a {type(p).__name__}")


def _compile(rule: AlertRule) -> _Compiled:
    above = math.inf if rule.above is None else rule.above
    below = -math.inf if rule.below is None else rule.below
    return _Compiled(
        rule=rule,
        metric=rule.metric,
        get=_getter(rule.metric),
        book=rule.book,
        underlying=rule.underlying,
        # the key's third part: the expiry, or at strategy scope the strategy
        expiry=rule.strategy if rule.scope == "strategy" else rule.expiry,
        above=above,
        below=below,
        clear_above=above - rule.hysteresis,
        clear_below=below + rule.hysteresis,
        cooldown_ns=round(rule.cooldown_s * _NS_PER_S),
        unit=UNITS.get(rule.metric) or RISK_UNITS.get(rule.metric, _COUNT_UNIT),
    )


def _payload(
    c: _Compiled,
    state: AlertState,
    direction: Direction,
    scope: Scope,
    key: tuple[str, str | None, str | None],
    value: float,
    source: Payload,
) -> AlertPayload:
    rule = c.rule
    book, underlying, third = key
    parts = [rule.name, book]
    if underlying is not None:
        parts.append(underlying)
        if third is not None:
            parts.append(third)
    return AlertPayload(
        ts_ns=source.ts_ns,
        valuation_ts_ns=source.valuation_ts_ns,
        id=":".join(parts),
        alert=rule.name,
        state=state,
        severity=rule.severity,
        metric=c.metric,
        scope=scope,
        book=book,
        underlying=underlying,
        expiry=None if scope == "strategy" else third,
        strategy=third if scope == "strategy" else None,
        value=float(value),
        threshold=c.above if direction == "above" else c.below,
        direction=direction,
        unit=c.unit,
    )
