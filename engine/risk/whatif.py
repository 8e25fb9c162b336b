"""What a proposed trade adds: the incremental VaR, ES (every method) and portfolio margin of a
list of (book, instrument, quantity) against the current book and moves, for each book touched
and for the firm (docs/risk.md#what-if). Pure: the daemon copies the books and prices the
instruments on the event loop and calls :func:`what_if` in a worker thread."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from engine.outputs import (
    VAR_METHODS,
    Trade,
    VarPayload,
    WhatIfPayload,
    WhatIfRisk,
    WhatIfScope,
)
from engine.risk.attribution import combine_books
from engine.risk.breakdown import FIRM
from engine.risk.history import MoveHistory
from engine.risk.scenarios import ScenarioBook
from engine.state import BookRisk, Priced

if TYPE_CHECKING:
    from engine.risk.report import RiskConfig

__all__ = ["Added", "what_if", "with_trades"]


class Added:
    """The priced trades, ready to add: per trade one unit's row of :class:`Priced`, its
    underlying's name and index price (NaN: none yet; what a new underlying of a book is valued
    at for margin), and the quantity (trades without a price are left out)."""

    def __init__(
        self,
        trades: Sequence[Trade],
        priced: Priced,
        underlyings: Sequence[str],
        index_prices: Sequence[float],
    ) -> None:
        self.trades = list(trades)
        self.priced = priced
        self.underlyings = list(underlyings)
        self.index_prices = list(index_prices)
        self.unpriced = [t.instrument for t, ok in zip(trades, priced.ok.tolist(), strict=True)
                         if not ok]  # fmt: skip


def with_trades(br: BookRisk | None, book: str, added: Added, valuation_ns: int) -> BookRisk:
    """``br`` (None: a book not held yet) with the priced trades into ``book`` added as
    positions: their rows in the scenario book, their figures in the exposure sums, a new
    underlying valued at its index price, the underlyings sorted as the portfolio sorts
    them (the Monte Carlo draws follow their order). The new positions' ``rows`` are -1 (no
    instrument row: the copy is for risk figures, not for labels)."""
    mine = [
        i
        for i, (t, ok) in enumerate(zip(added.trades, added.priced.ok.tolist(), strict=True))
        if ok and t.book == book
    ]
    p = added.priced
    n_fig = p.units.shape[1]
    base = br if br is not None else _empty(book, n_fig, valuation_ns, p.positions)
    unds = list(base.underlyings)
    figures, prices = base.figures.copy(), base.prices.copy()
    und_col = []
    for i in mine:
        name = added.underlyings[i]
        if name not in unds:
            unds.append(name)
            figures = np.vstack([figures, np.zeros((1, figures.shape[1]))])
            prices = np.append(prices, added.index_prices[i])
        u = unds.index(name)
        und_col.append(u)
        figures[u, :n_fig] += p.units[i] * added.trades[i].quantity
    idx = np.array(mine, dtype=np.int64)
    rows = p.positions._replace(
        weight=p.positions.weight * np.array([t.quantity for t in added.trades]),
        und=np.zeros(len(added.trades), dtype=np.int64),
    )
    rows = _book([a[idx] for a in rows])
    rows = rows._replace(und=np.array(und_col, dtype=np.int64))
    positions = _book([np.concatenate([a, b]) for a, b in zip(base.positions, rows, strict=True)])
    order = sorted(range(len(unds)), key=unds.__getitem__)  # as the portfolio orders them
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    positions = positions._replace(und=rank[positions.und] if order else positions.und)
    return replace(
        base,
        underlyings=[unds[k] for k in order],
        positions=_book(list(positions)),
        figures=figures[order],
        prices=prices[order],
        rows=np.concatenate([base.rows, np.full(idx.size, -1, dtype=np.int64)]),
    )


def _book(columns: list[Any]) -> ScenarioBook:
    """A scenario book of these columns, each made C-contiguous (and a copy)."""
    return ScenarioBook(*(np.array(c, order="C") for c in columns))


def _empty(book: str, n_fig: int, valuation_ns: int, like: ScenarioBook) -> BookRisk:
    return BookRisk(
        book=book,
        valuation_ns=valuation_ns,
        underlyings=[],
        positions=_book([a[:0] for a in like]),
        figures=np.zeros((0, n_fig + 3)),
        prices=np.zeros(0),
        rows=np.zeros(0, dtype=np.int64),
        defs=[],
    )


def what_if(
    books: dict[str, BookRisk],
    added: Added,
    history: MoveHistory,
    cfg: RiskConfig,
    now_ns: int,
    valuation_ns: int,
) -> WhatIfPayload:
    """The incremental VaR, ES (every method, as the ``var`` payload computes them) and
    portfolio margin of ``added`` for each book it touches and for the firm."""
    from engine.risk.report import margin_payload, var_payload  # report imports breakdown

    touched = sorted({t.book for t in added.trades})
    after = dict(books)
    for b in touched:
        after[b] = with_trades(books.get(b), b, added, valuation_ns)
    pairs: list[tuple[str, BookRisk | None, BookRisk]] = [
        (b, books.get(b), after[b]) for b in touched
    ]
    pairs.append((FIRM, combine_books(list(books.values()), FIRM),
                  combine_books(list(after.values()), FIRM)))  # fmt: skip
    scopes = []
    for name, before, now_book in pairs:
        v0 = var_payload(before, history, cfg, now_ns) if before is not None else None
        v1 = var_payload(now_book, history, cfg, now_ns)
        m0 = margin_payload(before, cfg, now_ns).margin_im if before is not None else 0.0
        m1 = margin_payload(now_book, cfg, now_ns)
        scopes.append(
            WhatIfScope(
                book=name,
                risk=[_risk(m, v0, v1) for m in VAR_METHODS],
                margin_im_before=m0,
                margin_im_after=m1.margin_im,
                incremental_margin_im=_diff(m1.margin_im, m0),
                margin_status=m1.status,
            )
        )
    return WhatIfPayload(
        ts_ns=now_ns,
        valuation_ts_ns=valuation_ns,
        trades=added.trades,
        scopes=scopes,
        unpriced=added.unpriced,
        units=_UNITS,
    )


def _diff(after: float | None, before: float | None) -> float | None:
    if after is None or before is None or not (math.isfinite(after) and math.isfinite(before)):
        return None
    return after - before


def _risk(method: str, before: VarPayload | None, after: VarPayload) -> WhatIfRisk:
    """A book not held before has no risk: 0 before."""
    v0 = 0.0 if before is None else getattr(before, f"var_{method}")
    e0 = 0.0 if before is None else getattr(before, f"es_{method}")
    v1, e1 = getattr(after, f"var_{method}"), getattr(after, f"es_{method}")
    return WhatIfRisk(
        method=method,  # type: ignore[arg-type]  # one of VAR_METHODS
        status=after.status.get(method, ""),
        var_before=v0,
        var_after=v1,
        incremental_var=_diff(v1, v0),
        es_before=e0,
        es_after=e1,
        incremental_es=_diff(e1, e0),
    )


_UNITS: Final = {
    "var_before": "USD loss",
    "var_after": "USD loss",
    "incremental_var": "USD: var_after - var_before",
    "es_before": "USD loss",
    "es_after": "USD loss",
    "incremental_es": "USD: es_after - es_before",
    "margin_im_before": "USD: Deribit-style portfolio margin, initial",
    "incremental_margin_im": "USD: margin_im_after - margin_im_before",
}
