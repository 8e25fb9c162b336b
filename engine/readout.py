"""What the rest of riskd reads from the portfolio (:mod:`engine.state`), at the valuation
time: exposure payloads, copies of books for the risk measures, option chains for the skew
fits, instruments priced for hedges and strategy legs. Reads only: the portfolio may move on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from engine import kernels
from engine.instruments import Instrument, Kind
from engine.lots import Groups, Lots, expiry_label
from engine.market import MarketData
from engine.outputs import (
    METRICS,
    UNITS,
    BookExposure,
    ExpiryColumns,
    Exposure,
    UnderlyingExposure,
)
from engine.positions import ScenarioBook

__all__ = ["BookRisk", "Chain", "Priced", "Readout"]

F64 = npt.NDArray[np.float64]

_N_FLOAT = len(METRICS)  # the columns of a sum before the two counts
_NAN = math.nan


@dataclass(frozen=True, slots=True)
class BookRisk:
    """A book as the risk measures take it (:mod:`engine.risk`), at the valuation time: its open
    positions for full revaluation (``positions.und`` indexes ``underlyings``), and per
    underlying its exposure sums (``figures[u, AGG_FIELDS.index(name)]``) and reference price
    (the index's latest price; NaN when none came yet). Copies: the portfolio may move on
    (``defs``, the portfolio's instruments by row, only grows)."""

    book: str
    valuation_ns: int
    underlyings: list[str]
    positions: ScenarioBook
    figures: F64
    prices: F64
    rows: npt.NDArray[np.int64]
    defs: list[Instrument]

    def instrument(self, i: int) -> str:
        """The instrument of position ``i``."""
        return self.defs[int(self.rows[i])].name

    @property
    def instruments(self) -> list[str]:
        """The instrument of every position, in order."""
        return [self.defs[i].name for i in self.rows.tolist()]


@dataclass(frozen=True, slots=True)
class Chain:
    """One expiry's options of one underlying and settlement, as quoted, priced at the valuation
    time from their own stored quotes (arrays: one entry per option, held or only quoted).

    Attributes:
        underlying: the underlying, with the quote currency for linear options
            (``BTC``: Deribit's coin-settled options; ``BTC_USDC``: its linear ones).
        expiry_ns, expiry: the expiry, int UNIX ns and its label.
        coin_settled: inverse (coin-settled) options.
        sigma: each option's vol from its own quote; NaN where it has none usable or its quote
            is stale (older than the portfolio's ``stale_after_ns``).
        forward, T: each option's forward (or spot) and years to expiry.
        held: which options are held.
        quote_ns: each option's last quote's receipt time (0: none).
        bid, ask: each option's latest quote, in its quote currency (NaN: none).
    """

    underlying: str
    expiry_ns: int
    expiry: str
    coin_settled: bool
    instruments: list[str]
    strike: F64
    is_call: npt.NDArray[np.bool_]
    sigma: F64
    forward: F64
    T: F64
    held: npt.NDArray[np.bool_]
    quote_ns: npt.NDArray[np.int64]
    bid: F64
    ask: F64


@dataclass(frozen=True, slots=True)
class Priced:
    """Instruments priced at the valuation time (:meth:`engine.state.Portfolio.priced`), one
    row each: whether it could be (``ok``; unknown or without market data: False and NaN
    figures), its figures per 1 unit of position quantity in the units and order of
    ``engine.state.AGG_FIELDS`` (all but ``pnl`` and the counts), and a :class:`ScenarioBook`
    of one unit of each (``weight`` its contract multiplier, ``und`` 0) for revaluation."""

    names: list[str]
    ok: npt.NDArray[np.bool_]
    units: F64
    positions: ScenarioBook


class Readout:
    """Reads the portfolio's instruments, lots and sums into payloads and copies.

    Args:
        market: the instruments and their inputs (and the valuation time).
        lots: the lots.
        groups: the sums.
    """

    def __init__(self, market: MarketData, lots: Lots, groups: Groups) -> None:
        self._market = market
        self._lots = lots
        self._groups = groups
        # each instrument row's chain (-1: not an option, or not seen yet), and the chains'
        # keys (underlying with the quote currency of linear ones, expiry, coin-settled)
        self._chain_of = np.zeros(0, dtype=np.int64)
        self._chain_keys: list[tuple[str, int, bool]] = []
        self._chain_ids: dict[tuple[str, int, bool], int] = {}
        self._labels: dict[int, str] = {}  # expiry -> its label

    # ------------------------------------------------------------------ exposure payloads
    def exposure_payloads(
        self,
        keys: Iterable[tuple[str, str]],
        now_ns: int,
        books: Iterable[str] | None = None,
    ) -> list[tuple[str, Exposure]]:
        """See :meth:`engine.state.Portfolio.exposure_payloads`."""
        valuation = self._market.valuation_ns
        pairs = sorted(keys)
        book_names = sorted({b for b, _ in pairs} if books is None else set(books))
        out: list[tuple[str, Exposure]] = []
        if pairs:
            ua = self._groups.pairs.arrays
            rows = [self._groups.pair_rows[k] for k in pairs]
            sums = (ua["hi"][rows] + ua["lo"][rows]).tolist()
            for (book, und), row, expiries in zip(
                pairs, sums, self._expiry_columns(pairs), strict=True
            ):
                d, d_usd, d_adj, g, cg, vega, theta, rho, vanna, volga, mv, pnl, n, n_stale = row
                payload = UnderlyingExposure(
                    ts_ns=now_ns,
                    valuation_ts_ns=valuation,
                    book=book,
                    underlying=und,
                    delta=d,
                    delta_usd=d_usd,
                    delta_adj=d_adj,
                    gamma=g,
                    cash_gamma=cg,
                    vega=vega,
                    theta=theta,
                    rho=rho,
                    vanna=vanna,
                    volga=volga,
                    market_value=mv,
                    pnl=pnl,
                    n_positions=round(n),
                    n_stale=round(n_stale),
                    expiries=expiries,
                    units=UNITS,
                )
                out.append((f"{book}:{und}", payload))
        if book_names:
            ba = self._groups.books.arrays
            rows = [self._groups.book_rows[b] for b in book_names]
            sums = (ba["hi"][rows] + ba["lo"][rows]).tolist()
            for book, row in zip(book_names, sums, strict=True):
                # delta, delta_adj, gamma, vanna: underlying units, they do not add up here
                _, d_usd, _, _, cg, vega, theta, rho, _, volga, mv, pnl, n, n_stale = row
                payload_book = BookExposure(
                    ts_ns=now_ns,
                    valuation_ts_ns=valuation,
                    book=book,
                    delta_usd=d_usd,
                    cash_gamma=cg,
                    vega=vega,
                    theta=theta,
                    rho=rho,
                    volga=volga,
                    market_value=mv,
                    pnl=pnl,
                    n_positions=round(n),
                    n_stale=round(n_stale),
                    units=UNITS,
                )
                out.append((book, payload_book))
        return out

    def _expiry_columns(self, pairs: list[tuple[str, str]]) -> list[ExpiryColumns]:
        """Each pair's ``expiries``: ``expiry`` (labels, in time order) and one column per
        figure with a value per expiry. The columns of all the pairs are gathered in one pass,
        then converted to Python numbers one pair at a time."""
        cached = [self._groups.of_pair(key) for key in pairs]
        index = np.concatenate([c[0] for c in cached])
        ga = self._groups.groups.arrays
        values = (ga["hi"][index] + ga["lo"][index]).T.copy()  # C order: each row contiguous
        counts = np.rint(values[_N_FLOAT:]).astype(np.int64)  # n_positions, n_stale
        out: list[ExpiryColumns] = []
        start = 0
        for _, labels in cached:
            stop = start + len(labels)
            # one call each: the pair's columns as lists of Python numbers
            d, d_usd, d_adj, g, cg, vega, theta, rho, vanna, volga, mv, pnl = values[
                :_N_FLOAT, start:stop
            ].tolist()
            n, n_stale = counts[:, start:stop].tolist()
            out.append(
                ExpiryColumns(
                    expiry=labels,
                    delta=d,
                    delta_usd=d_usd,
                    delta_adj=d_adj,
                    gamma=g,
                    cash_gamma=cg,
                    vega=vega,
                    theta=theta,
                    rho=rho,
                    vanna=vanna,
                    volga=volga,
                    market_value=mv,
                    pnl=pnl,
                    n_positions=n,
                    n_stale=n_stale,
                )
            )
            start = stop
        return out

    # ------------------------------------------------------------------ copies
    def books_risk(self, books: Iterable[str] | None = None) -> dict[str, BookRisk]:
        """See :meth:`engine.state.Portfolio.books_risk`. Vectorised: every open lot is copied
        once, sorted by book, and each book gets its slice of the copies."""
        market, groups = self._market, self._groups
        la, ia, ga = self._lots.cols.arrays, market.cols.arrays, groups.groups.arrays
        n = self._lots.cols.n
        n_books = groups.books.n
        group_of = la["group"][:n]
        lots = np.flatnonzero(la["qty"][:n] != 0.0)
        owner = ga["book"][group_of[lots]]
        # a stable sort of 16-bit keys is a radix sort: a fifth of the time of int64's
        keys = owner.astype(np.uint16) if n_books <= 1 << 16 else owner
        order = np.argsort(keys, kind="stable")
        lots, owner = lots[order], owner[order]
        bounds = np.searchsorted(owner, np.arange(n_books + 1))
        # the pairs held, by book then underlying: each book's are a range of these
        ordered = sorted(groups.pair_rows.items())
        perm = np.fromiter((row for _, row in ordered), np.int64, len(ordered))
        pair_book = [b for (b, _), _ in ordered]
        starts = dict(zip(reversed(pair_book), range(len(ordered) - 1, -1, -1), strict=True))
        ends = {b: i + 1 for i, b in enumerate(pair_book)}
        rank = np.empty(groups.pairs.n, dtype=np.int64)  # a pair's place among its book's
        rank[perm] = np.arange(len(ordered)) - np.array([starts[b] for b in pair_book], np.int64)
        inst = la["inst"][lots]
        bu = ga["bu"][group_of[lots]]
        every = self._scenario_book(inst, ia, la["qty"][lots] * ia["mult"][inst], rank[bu])
        first = np.full(groups.pairs.n, -1, dtype=np.int64)  # each pair's first lot
        first[bu[::-1]] = np.arange(len(bu) - 1, -1, -1)
        first = first[perm]
        spot_px = market.spots.cols.arrays["px"]
        price = np.full(len(ordered), _NAN)  # each pair's index, from its first lot
        seen = first >= 0
        price[seen] = spot_px[ia["spot_row"][inst[first[seen]]]]
        ua = groups.pairs.arrays
        figures = ua["hi"][perm] + ua["lo"][perm]
        out = {}
        for book in groups.book_names() if books is None else books:
            brow = groups.book_rows[book]
            mine = slice(bounds[brow], bounds[brow + 1])
            pairs = slice(starts.get(book, 0), ends.get(book, 0))
            out[book] = BookRisk(
                book=book,
                valuation_ns=market.valuation_ns,
                underlyings=[u for (_, u), _ in ordered[pairs]],
                positions=ScenarioBook._make([column[mine] for column in every]),
                figures=figures[pairs],
                prices=price[pairs],
                rows=inst[mine],
                defs=market.defs,
            )
        return out

    def chains(self) -> list[Chain]:
        """See :meth:`engine.state.Portfolio.chains`. Vectorised over the rows: the options
        are grouped by their chain (kept per row once seen), in the chains' key order."""
        market = self._market
        ia = market.cols.arrays
        quoted = market.quote_rows
        rows = np.fromiter(quoted.values(), np.int64, len(quoted))
        held = np.flatnonzero(ia["n_lots"][: market.cols.n])
        rows = np.union1d(rows, held[ia["kind"][held] == kernels.KIND_OPTION])
        if not rows.size:
            return []  # nothing quoted or held yet
        chain = self._chains_of(rows)
        rank = np.empty(len(self._chain_keys), dtype=np.int64)
        rank[sorted(range(len(rank)), key=self._chain_keys.__getitem__)] = np.arange(len(rank))
        order = np.lexsort((rows, rank[chain]))  # by chain, each one's rows ascending
        rows, chain = rows[order], chain[order]
        starts = np.flatnonzero(np.diff(chain, prepend=-1))
        scratch = market.scratch_price(rows)  # columns of every instrument row
        usable = (scratch["status"][rows] == kernels.OK) & ~scratch["bad"][rows]
        names = [d.name for d in map(market.defs.__getitem__, rows.tolist())]
        # gathered once for every option; each chain gets its slice
        strike, is_call, quote_ns = ia["strike"][rows], ia["is_call"][rows], ia["own_ts"][rows]
        held_now = ia["n_lots"][rows] > 0
        bid, ask = ia["bid"][rows], ia["ask"][rows]
        sigma = np.where(usable, scratch["sigma"][rows], np.nan)
        forward, tte = scratch["X"][rows], scratch["T"][rows]
        out = []
        for start, stop in zip(starts.tolist(), [*starts[1:].tolist(), len(rows)], strict=True):
            und, expiry_ns, inverse = self._chain_keys[int(chain[start])]
            if expiry_ns <= market.valuation_ns:
                continue  # expired
            at = slice(start, stop)
            out.append(
                Chain(
                    underlying=und,
                    expiry_ns=expiry_ns,
                    expiry=self._label(expiry_ns),
                    coin_settled=inverse,
                    instruments=names[at],
                    strike=strike[at],
                    is_call=is_call[at],
                    sigma=sigma[at],
                    forward=forward[at],
                    T=tte[at],
                    held=held_now[at],
                    quote_ns=quote_ns[at],
                    bid=bid[at],
                    ask=ask[at],
                )
            )
        return out

    def _chains_of(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The chain of each option row, finding those of rows not seen before."""
        market = self._market
        if len(self._chain_of) < market.cols.n:
            grown = np.full(market.cols.n, -1, dtype=np.int64)
            grown[: len(self._chain_of)] = self._chain_of
            self._chain_of = grown
        chain = self._chain_of[rows]
        for i in rows[chain < 0].tolist():
            inst = market.defs[i]
            name = (
                inst.underlying if inst.is_inverse else f"{inst.underlying}_{inst.quote_currency}"
            )
            key = (name, inst.expiry_ns or 0, inst.is_inverse)
            self._chain_of[i] = self._chain_ids.setdefault(key, len(self._chain_keys))
            if self._chain_of[i] == len(self._chain_keys):
                self._chain_keys.append(key)
        return self._chain_of[rows]

    def _label(self, expiry_ns: int) -> str:
        label = self._labels.get(expiry_ns)
        if label is None:
            label = self._labels[expiry_ns] = expiry_label(expiry_ns, Kind.OPTION)
        return label

    def priced(self, names: list[str]) -> Priced:
        """See :meth:`engine.state.Portfolio.priced`."""
        market = self._market
        rows = []
        for name in names:
            inst = market.registry.get(name)
            rows.append(-1 if inst is None else market.row(inst))
        r = np.array(rows, dtype=np.int64)
        known = r[r >= 0]
        scratch = market.scratch_price(known)
        ia = market.cols.arrays
        at = np.where(r >= 0, r, 0)
        ok = (r >= 0) & (scratch["status"][at] == kernels.OK)
        nan = np.where(ok, 0.0, np.nan)  # NaN where not priced
        one = self._scenario_book(at, scratch, ia["mult"][at].copy(), np.zeros_like(at))
        return Priced(
            names=list(names),
            ok=ok,
            units=scratch["unit"][at, : kernels.N_UNIT - 2] + nan[:, None],
            positions=one._replace(T=one.T + nan, sigma=one.sigma + nan, X=one.X + nan),
        )

    def _scenario_book(
        self,
        rows: npt.NDArray[np.int64],
        priced: dict[str, npt.NDArray[Any]],
        weight: F64,
        und: npt.NDArray[np.int64],
    ) -> ScenarioBook:
        """Instruments ``rows`` as a :class:`ScenarioBook`, their X, T and sigma taken from
        ``priced`` (the live columns or a scratch copy)."""
        ia = self._market.cols.arrays
        return ScenarioBook(
            kind=ia["kind"][rows],
            black=ia["black"][rows],
            inverse=ia["inverse"][rows],
            is_call=ia["is_call"][rows],
            american=ia["american"][rows],
            strike=ia["strike"][rows],
            T=priced["T"][rows],
            r=ia["r"][rows],
            q=ia["q"][rows],
            sigma=priced["sigma"][rows],
            X=priced["X"][rows],
            div_pv=ia["div_pv"][rows],
            weight=weight,
            und=und,
        )
