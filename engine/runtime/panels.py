"""What the terminal view draws (:mod:`engine.runtime.view`), from the payloads the daemon
publishes: rich tables, every figure with its unit (in its column head, or beside it).

:func:`render` returns a renderable that builds its tables only when rich draws it (in the
view's worker thread), for the width it is drawn at: a table too wide for it drops its least
important columns first, and a long table shows its first rows and says how many more there
are (the web dashboard and Redis have them all).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.text import Text

from engine.outputs import (
    VAR_METHODS,
    AlertPayload,
    Exposure,
    HedgePayload,
    MarginPayload,
    UnderlyingExposure,
    VarPayload,
)
from engine.runtime.health import Health

__all__ = ["ALERT_ROWS", "FRESH_S", "MAX_ROWS", "STALE_S", "Frame", "render"]

FRESH_S: Final = 5.0
"""Data older than this (from its valuation time to now) is marked as ageing (yellow)..."""
STALE_S: Final = 30.0
"""... and beyond this as stale (red)."""
MAX_ROWS: Final = 24
"""Rows a table shows at most (a desk with many books: the first, in key order)."""
ALERT_ROWS: Final = 10
"""Rows of alerts shown at most (the most urgent), so that the figures below stay in view."""

_NS_PER_S: Final = 1_000_000_000
_TABLE_LINES: Final = 3  # a table's lines besides its rows: title, head, rule
_GAP: Final = 3  # spaces between two columns
_SEVERITY_STYLE: Final = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
_SEVERITY_ORDER: Final = {"critical": 0, "warning": 1, "info": 2}
_METHOD_HEADS: Final = {
    "delta_normal": "delta-normal $",
    "delta_gamma": "delta-gamma $",
    "historical": "historical $",
    "monte_carlo": "Monte Carlo $",
}

Cell = Text | str


@dataclass(frozen=True, slots=True)
class Frame:
    """What one redraw shows, taken on the event loop: the daemon's health and the latest
    payloads (frozen, so the worker thread that draws them reads them safely).

    Attributes:
        now_ns: the daemon's clock (the age of the data).
        health: feeds, Redis, counters.
        exposures, var, margin, hedges: the latest payload of each key, in key order.
        active: the alerts raised now, in the order raised.
        recent: the latest transitions, oldest first.
        redis_url: redacted.
        dashboard_url: the web dashboard's address (None: off).
    """

    now_ns: int
    health: Health
    exposures: list[Exposure]
    var: list[VarPayload]
    margin: list[MarginPayload]
    hedges: list[HedgePayload]
    active: list[AlertPayload]
    recent: list[AlertPayload]
    redis_url: str
    dashboard_url: str | None


def render(frame: Frame) -> RenderableType:
    """The view of ``frame``: the state line, health, alerts, exposures, VaR and ES, margin,
    hedges. Built when drawn."""
    return _View(frame)


class _View:
    """The view of one frame, built for the size rich draws it at: on a terminal, only the
    rows its height shows are built (the rest would be cut); elsewhere, every row."""

    def __init__(self, frame: Frame) -> None:
        self.frame = frame

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        f = self.frame
        yield _state_line(f)
        yield _health_lines(f)
        lines = console.height - 2 - len(f.health.feeds) if console.is_terminal else None
        tables: list[Callable[[int], _Fitted]] = []
        if f.active or f.recent:
            tables.append(lambda rows: _alerts(f, min(rows, ALERT_ROWS)))
        else:
            yield Text("alerts: none raised", style="green")
            lines = None if lines is None else lines - 1
        tables.append(lambda rows: _exposures(f.exposures, rows))
        if f.var:
            tables.append(lambda rows: _var(f.var, rows))
        if f.margin:
            tables.append(lambda rows: _margin(f.margin, rows))
        if f.hedges:
            tables.append(lambda rows: _hedges(f.hedges, rows))
        for build in tables:
            rows = MAX_ROWS if lines is None else min(MAX_ROWS, lines - _TABLE_LINES - 1)
            if rows < 1:
                return  # nothing more fits (rich shows "..." at the bottom)
            table, used = build(rows).fit(options.max_width)
            yield table
            lines = None if lines is None else lines - used


# ---------------------------------------------------------------------------- lines


def _state_line(frame: Frame) -> Text:
    status = frame.health.status
    line = Text.assemble(
        ("riskd", "bold"), f"  up {_duration(status.uptime_s)}  {status.cycles:,} cycles  "
    )
    valued = [p.valuation_ts_ns for p in frame.exposures if p.valuation_ts_ns is not None]
    if valued:
        at = max(valued)
        age_s = max(frame.now_ns - at, 0) / _NS_PER_S
        line.append(f"valued {_clock_time(at)}  ")
        line.append(f"data age {age_s:.1f} s", style=_age_style(age_s))
    else:
        line.append("no valuation yet", style="yellow")
    if frame.dashboard_url is not None:
        line.append("  dashboard ")
        line.append(frame.dashboard_url, style="bold cyan underline")
    else:
        line.append("  dashboard off ([http] address)", style="dim")
    return line


def _health_lines(frame: Frame) -> Text:
    """A line per feed, and one for Redis."""
    lines = Text()
    for f in frame.health.feeds:
        if f.connected:
            state, style = "connected", "green"
        elif f.finished:
            state, style = "finished", "cyan"
        else:
            state, style = "DISCONNECTED", "bold red"
        lines.append(f"feed {f.name}: ")
        lines.append(state, style=style)
        lines.append(f", {f.received:,} messages, {sum(f.dropped.values()):,} dropped")
        if f.finished:
            lines.append(" (the file's end: the final state is held; Ctrl-C exits)")
        lines.append("\n")
    sink = frame.health.sink
    lines.append(f"redis {frame.redis_url}: ")
    if sink.connected:
        lines.append("connected", style="green")
        lines.append(f", {sink.published:,} payloads published")
    else:
        lines.append(
            "NOT REACHABLE - computing on; will publish the latest state once it is back",
            style="bold red",
        )
    return lines


def _alerts(frame: Frame, rows: int) -> _Fitted:
    """The active alerts by severity (the most urgent, then the newest, first), then the latest
    transitions, newest first."""
    active = sorted(frame.active, key=lambda a: (_SEVERITY_ORDER[a.severity], -a.ts_ns))
    counts = ", ".join(
        f"{n} {severity}"
        for severity in _SEVERITY_ORDER
        if (n := sum(a.severity == severity for a in active))
    )
    title = f"Alerts: {len(active)} active" + (f" ({counts})" if counts else "")
    if frame.recent:
        title += ", then the latest transitions"
    columns = [
        _Column("severity", right=False),
        _Column("alert", right=False),
        _Column("value"),
        _Column("limit", 1),
        _Column("at", 2, right=False),
        _Column("state", right=False),
    ]
    table = _Fitted(title, columns, rows)
    for a in active:
        table.add(_alert_cells(a, Text("ACTIVE", style=_SEVERITY_STYLE[a.severity])))
    for a in reversed(frame.recent):
        state = Text(a.state, style="red" if a.state == "raised" else "green")
        table.add(_alert_cells(a, state), "dim" if a.state == "cleared" else "")
    return table


def _alert_cells(a: AlertPayload, state: Text) -> list[Cell]:
    limit = "-" if a.threshold is None else f"{a.direction} {_number(a.threshold)} {a.unit}"
    return [
        Text(a.severity, style=_SEVERITY_STYLE[a.severity]),
        a.id,
        f"{_number(a.value)} {a.unit}",
        limit,
        _clock_time(a.ts_ns),
        state,
    ]


# ---------------------------------------------------------------------------- tables


@dataclass(frozen=True, slots=True)
class _Column:
    head: str
    rank: int = 0  # 0: always shown; the highest rank is dropped first when too wide
    right: bool = True


@dataclass(slots=True)
class _Fitted:
    """A table that drops its highest-ranked columns until it fits the width it is drawn at,
    and shows the rows the lines left for it hold.

    Laid out here, as one line of text per row: rich's ``Table`` renders and measures every
    cell on its own (a redraw with many rows would cost tens of milliseconds); rich styles
    and draws the lines."""

    title: str
    columns: Sequence[_Column]
    limit: int  # rows shown at most
    rows: list[tuple[list[Text], str]] = field(default_factory=list)  # cells and row style
    more: int = 0  # rows left out

    def full(self) -> bool:
        """Whether the table has its rows: then the next one is counted, not built."""
        if len(self.rows) < self.limit:
            return False
        self.more += 1
        return True

    def add(self, cells: Sequence[Cell], style: str = "") -> None:
        if not self.full():
            self.rows.append(([c if isinstance(c, Text) else Text(c) for c in cells], style))

    def fit(self, width: int) -> tuple[Text, int]:
        """The table for ``width`` columns, and the lines it takes."""
        shown, more = self.rows, self.more
        widths = [
            max(cell_len(c.head), *(cells[i].cell_len for cells, _ in shown))
            for i, c in enumerate(self.columns)
        ]
        keep: list[int] = []
        for cut in sorted({c.rank for c in self.columns}, reverse=True):
            keep = [i for i, c in enumerate(self.columns) if c.rank <= cut]
            if sum(widths[i] + _GAP for i in keep) - _GAP <= width:
                break
        heads = [Text(self.columns[i].head) for i in keep]
        out = [Text(self.title, style="bold"), self._line(keep, heads, widths, "bold")]
        out.append(Text("─" * (sum(widths[i] + _GAP for i in keep) - _GAP)))
        out += [self._line(keep, [cells[i] for i in keep], widths, st) for cells, st in shown]
        if more:
            out.append(Text(f"+ {more} more rows (web dashboard, Redis)", style="dim"))
        block = Text("\n", no_wrap=True, overflow="ellipsis").join(out)
        return block, len(out)

    def _line(self, keep: list[int], cells: list[Text], widths: list[int], style: str) -> Text:
        line = Text(style=style)
        for n, (i, cell) in enumerate(zip(keep, cells, strict=True)):
            pad = " " * (widths[i] - cell.cell_len)
            if n:
                line.append(" " * _GAP)
            if self.columns[i].right:
                line.append(pad)
                line.append_text(cell)
            else:
                line.append_text(cell)
                line.append(pad)
        line.rstrip()
        return line


_EXPOSURE_FIGURES: Final = (
    # attribute, column head (with its unit), rank
    ("delta_usd", "delta $", 0),
    ("cash_gamma", "cash gamma $/1%", 1),
    ("vega", "vega $/pt", 0),
    ("theta", "theta $/day", 1),
    ("market_value", "value $", 2),
    ("pnl", "P&L $", 0),
)


def _exposures(exposures: Sequence[Exposure], rows: int) -> _Fitted:
    columns = [
        _Column("book", right=False),
        _Column("underlying", right=False),
        _Column("delta"),
        *(_Column(head, rank) for _, head, rank in _EXPOSURE_FIGURES),
        _Column("positions", 3),
        _Column("stale", 3),
    ]
    table = _Fitted("Exposures (delta in underlying units)", columns, rows)
    for p in exposures:
        if table.full():
            continue
        book_row = not isinstance(p, UnderlyingExposure)
        if isinstance(p, UnderlyingExposure):
            cells: list[Cell] = [p.book, p.underlying, f"{p.delta:,.3f} {p.underlying}"]
        else:
            cells = [p.book, "all (USD)", Text("-", style="dim")]
        cells += [
            _money(getattr(p, name), signed=name == "pnl") for name, _, _ in _EXPOSURE_FIGURES
        ]
        cells += [f"{p.n_positions:,}", Text(f"{p.n_stale:,}", style="yellow" if p.n_stale else "")]
        table.add(cells, "bold" if book_row else "")
    return table


def _var(payloads: Sequence[VarPayload], rows: int) -> _Fitted:
    first = payloads[0]
    columns = [_Column("book", right=False), _Column("figure", right=False)]
    for rank, m in enumerate(VAR_METHODS):
        head = _METHOD_HEADS[m]
        if m == "historical":
            head += f" ({first.history_days} d)"
        elif m == "monte_carlo":
            head += f" ({first.mc_scenarios:,} sc.)"
        columns.append(_Column(head, 0 if m in (first.method, "historical") else 1 + rank))
    title = f"VaR and ES (USD, {first.horizon_days:g} d; * published) valued {_valued(first)}"
    table = _Fitted(title, columns, rows)
    for v in payloads:
        for kind, label, confidence in (
            ("var", "VaR", v.confidence),
            ("es", "ES", v.es_confidence),
        ):
            if table.full():
                continue
            cells: list[Cell] = [v.book, f"{label} {confidence:.1%}"]
            for m in VAR_METHODS:
                cell = _money(getattr(v, f"{kind}_{m}"))
                if m == v.method:
                    cell.append(" *")
                cells.append(cell)
            table.add(cells)
    return table


def _margin(payloads: Sequence[MarginPayload], rows: int) -> _Fitted:
    """The crypto exchanges' margin and the US margin, each where some book has it (a US book
    has no Deribit-style figures: its Reg T and portfolio margin take their place)."""
    crypto = any(m.margin_im is not None or m.status != "ok" for m in payloads)
    us = any(m.margin_reg_t is not None for m in payloads)
    fields: list[tuple[_Column, Callable[[MarginPayload], Text]]] = [
        (_Column("book", right=False), lambda m: Text(m.book)),
        (_Column("equity $", 1), lambda m: _money(m.equity_usd)),
    ]
    if crypto:
        fields += [
            (_Column("initial $"), lambda m: _money(m.margin_im)),
            (_Column("maintenance $"), lambda m: _money(m.margin_mm)),
            (_Column("initial use"), lambda m: _share(m.margin_utilisation)),
            (_Column("maint. use", 1), lambda m: _share(m.margin_mm_utilisation)),
            (_Column("saving vs standard $", 2), lambda m: _money(m.margin_savings)),
        ]
    if us:
        fields += [
            (_Column("Reg T $", 1 if crypto else 0), lambda m: _money(m.margin_reg_t)),
            (_Column("US PM $", 2 if crypto else 0), lambda m: _money(m.margin_us_portfolio)),
        ]
    fields.append(
        (
            _Column("status", 1, right=False),
            lambda m: Text(m.status, style="" if m.status == "ok" else "yellow"),
        )
    )
    title = f"Margin (USD; use = requirement / equity) valued {_valued(payloads[0])}"
    table = _Fitted(title, [column for column, _ in fields], rows)
    for m in payloads:
        if table.full():
            continue
        table.add([cell(m) for _, cell in fields])
    return table


def _hedges(payloads: Sequence[HedgePayload], rows: int) -> _Fitted:
    columns = [
        _Column("book", right=False),
        _Column("underlying", right=False),
        _Column("delta hedged", 1),
        _Column("trade"),
        _Column("future", right=False),
        _Column("delta left", 1),
        _Column("status", 2, right=False),
    ]
    table = _Fitted("Hedges: contracts of the future (+ buy, - sell)", columns, rows)
    for h in payloads:
        if table.full():
            continue
        contracts, left = h.hedge_contracts, h.hedge_residual_delta
        table.add(
            [
                h.book,
                h.underlying,
                f"{h.delta:,.3f} {h.underlying}",
                "-" if contracts is None else f"{_unsigned_zero(contracts, 0):+,.0f} contracts",
                h.future,
                "-" if left is None else f"{_unsigned_zero(left, 4):,.4f} {h.underlying}",
                Text(h.status, style="" if h.status == "ok" else "yellow"),
            ]
        )
    return table


# ---------------------------------------------------------------------------- formats


def _money(value: float | None, *, signed: bool = False) -> Text:
    """USD, whole; ``signed``: a loss red, a gain green."""
    if value is None or value != value:
        return Text("-", style="dim")
    style = "red" if signed and value < 0 else "green" if signed and value > 0 else ""
    return Text(f"{_unsigned_zero(value, 0):,.0f}", style=style)


def _share(value: float | None) -> Text:
    """A utilisation (0.164) as a percentage: green, yellow from 50%, red from 80%."""
    if value is None or value != value:
        return Text("-", style="dim")
    style = "bold red" if value >= 0.8 else "yellow" if value >= 0.5 else "green"
    return Text(f"{value:.1%}", style=style)


def _number(value: float) -> str:
    return f"{_unsigned_zero(value, 0):,.0f}" if abs(value) >= 100 else f"{value:,.4g}"


def _unsigned_zero(value: float, digits: int) -> float:
    """``value`` rounded to ``digits``, without the sign of a negative rounded to zero."""
    return round(value, digits) + 0.0


def _valued(payload: VarPayload | MarginPayload) -> str:
    at = payload.valuation_ts_ns if payload.valuation_ts_ns is not None else payload.ts_ns
    return _clock_time(at)


def _clock_time(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / _NS_PER_S, tz=UTC).strftime("%H:%M:%S UTC")


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s"
    return f"{s // 60}m{s % 60:02d}s"


def _age_style(age_s: float) -> str:
    return "green" if age_s < FRESH_S else "yellow" if age_s < STALE_S else "bold red"
