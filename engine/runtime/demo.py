"""``riskd demo``: price a small book from a TOML file and print its Greeks in desk units.

A stand-in for the daemon's main job until live feeds exist: each position carries its own market
inputs (see config/demo_book.toml for the fields).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import msgspec
import numpy as np
import numpy.typing as npt

from engine.constraints import PositiveFloat
from engine.daycount import year_fraction
from engine.errors import ConfigError
from engine.greeks import black76, bsm, inverse
from engine.status import Status, count_statuses
from engine.units import to_desk

__all__ = ["DemoBook", "PricedBook", "format_book", "load_book", "price_book"]


class Position(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One option position with its own market inputs (units: config/demo_book.toml)."""

    book: str
    instrument: str
    model: Literal["inverse", "black76", "bsm"]
    is_call: bool
    strike: PositiveFloat
    expiry: datetime
    underlying_price: PositiveFloat
    vol: PositiveFloat
    quantity: float
    rate: float = 0.0
    q: float = 0.0


class DemoBook(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A valuation time and the positions to price at it."""

    valuation: datetime
    positions: list[Position]


def load_book(path: Path) -> DemoBook:
    """Read and validate a demo book.

    Raises:
        ConfigError: unreadable file, bad TOML, or a bad key or value (the message names its
            path, e.g. ``$.positions[2].strike``).
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"invalid TOML: {exc}") from exc
    try:
        book = msgspec.convert(data, DemoBook)
    except msgspec.ValidationError as exc:
        raise ConfigError(str(path), str(exc)) from exc
    for i, p in enumerate(book.positions):
        for name, value in (("valuation", book.valuation), ("expiry", p.expiry)):
            if value.tzinfo is None:
                raise ConfigError(str(path), f"must carry a UTC offset - at `$.{name}`")
        if p.model != "bsm" and p.q != 0.0:
            raise ConfigError(str(path), f"q applies to model 'bsm' only - at `$.positions[{i}].q`")
    return book


def _ns(ts: datetime) -> int:
    return int(ts.timestamp()) * 1_000_000_000 + ts.microsecond * 1_000


FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class PricedBook:
    """Per-position figures (desk units, per position = per option × quantity) and statuses."""

    positions: list[Position]
    columns: dict[str, FloatArray]
    status: npt.NDArray[np.int8]


COLUMNS: tuple[tuple[str, str], ...] = (
    ("value", "USD"),
    ("delta", "underlying units"),
    ("delta_usd", "USD"),
    ("delta_adj", "coin, price-adjusted"),
    ("cash_gamma", "USD per 1% move"),
    ("vega", "USD per vol point"),
    ("theta", "USD per day"),
    ("rho", "USD per 1% rate"),
)
"""The printed columns and their units."""


def price_book(book: DemoBook) -> PricedBook:
    """Price every position at the book's valuation time; figures are per position, desk units."""
    n = len(book.positions)
    cols = {name: np.full(n, np.nan) for name, _ in COLUMNS}
    status = np.zeros(n, dtype=np.int8)
    now = _ns(book.valuation)
    for model in ("inverse", "black76", "bsm"):
        idx = np.array([i for i, p in enumerate(book.positions) if p.model == model], dtype=np.intp)
        if idx.size == 0:
            continue
        ps = [book.positions[i] for i in idx]
        is_call = np.array([p.is_call for p in ps])
        und = np.array([p.underlying_price for p in ps])
        K = np.array([p.strike for p in ps])
        T = year_fraction(now, np.array([_ns(p.expiry) for p in ps]))  # broadcasts
        r = np.array([p.rate for p in ps])
        vol = np.array([p.vol for p in ps])
        qty = np.array([p.quantity for p in ps])
        if model == "bsm":
            g = bsm(is_call, und, K, T, r, np.array([p.q for p in ps]), vol)
        elif model == "black76":
            g = black76(is_call, und, K, T, r, vol)
        else:
            gi = inverse(is_call, und, K, T, r, vol)
            cols["delta_adj"][idx] = gi.delta_adj * qty
            g = gi
        desk = to_desk(g, und)
        cols["value"][idx] = g.price * qty
        cols["delta"][idx] = desk.delta * qty
        cols["delta_usd"][idx] = desk.delta_usd * qty
        cols["cash_gamma"][idx] = desk.cash_gamma * qty
        cols["vega"][idx] = desk.vega * qty
        cols["theta"][idx] = desk.theta * qty
        cols["rho"][idx] = desk.rho * qty
        status[idx] = g.status
    return PricedBook(positions=list(book.positions), columns=cols, status=status)


def _fmt(x: float) -> str:
    return "" if np.isnan(x) else f"{x:,.2f}"


def format_book(priced: PricedBook, valuation: datetime) -> str:
    """A fixed-width table: one row per position, a total per book, units in the header."""
    names = [name for name, _ in COLUMNS]
    head = ["book", "instrument", "qty", *names]
    rows: list[list[str]] = []
    books = sorted({p.book for p in priced.positions})
    for book in books:
        idx = [i for i, p in enumerate(priced.positions) if p.book == book]
        for i in idx:
            p = priced.positions[i]
            rows.append(
                [p.book, p.instrument, f"{p.quantity:g}"]
                + [_fmt(priced.columns[c][i]) for c in names]
            )
        totals = []
        for c in names:
            vals = priced.columns[c][idx]
            # delta in underlying units does not add across underlyings; coin delta likewise
            additive = c not in ("delta", "delta_adj")
            totals.append(_fmt(float(np.nansum(vals))) if additive else "")
        rows.append([book, "TOTAL", "", *totals])
    widths = [max(len(r[j]) for r in [head, *rows]) for j in range(len(head))]

    def line(cells: list[str]) -> str:
        # text columns left-aligned, numbers right-aligned
        return "  ".join(
            c.rjust(w) if j >= 2 else c.ljust(w)
            for j, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    lines = [f"riskd demo - valuation {valuation.isoformat()} - Greeks per position (desk units)"]
    lines.append("units: " + "; ".join(f"{n}: {u}" for n, u in COLUMNS))
    lines.append(line(head))
    lines.extend(line(r) for r in rows)
    counts = count_statuses(priced.status)
    if counts:
        lines.append(
            "not priced: " + ", ".join(f"{Status(s).name}: {n}" for s, n in counts.items())
        )
    return "\n".join(lines)
