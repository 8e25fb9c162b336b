"""Tardis ``options_chain`` CSV rows -> :class:`~engine.events.Quote`, sans-I/O.

Tardis (https://docs.tardis.dev/downloadable-csv-files, section ``options_chain``) exports one
row per option ticker update, with the header::

    exchange,symbol,timestamp,local_timestamp,type,strike_price,expiration,open_interest,
    last_price,bid_price,bid_amount,bid_iv,ask_price,ask_amount,ask_iv,mark_price,mark_iv,
    underlying_index,underlying_price,delta,gamma,vega,theta,rho

Units, and where they come from:

- ``timestamp`` (the exchange's) and ``local_timestamp`` (Tardis's receipt): microseconds since
  the epoch, UTC (the docs' "CSV format details"). They become ``ts_event`` and, unless the
  caller gives its own, ``ts_recv``, in nanoseconds.
- prices (``bid_price``, ``ask_price``, ``mark_price``): as the exchange quotes them, so coin for
  Deribit's BTC/ETH options; ``underlying_price`` in USD (Deribit's forward of the expiry).
- IVs (``bid_iv``, ``ask_iv``, ``mark_iv``): **percent**, as Deribit sends them; riskd's decimal
  is ``mark_iv / 100``. Tardis does not rescale them: the docs' preview row for Deribit reads
  ``BTC-9JUN20-9875-P, ..., bid_price 0.0205, bid_iv 55.91, ask_price 0.0235, ask_iv 68.94,
  mark_price 0.02210436, mark_iv 62.89, underlying_index SYN.BTC-9JUN20, underlying_price
  9756.36``, and tardis-node's ``DeribitOptionSummaryMapper`` (src/mappers/deribit.ts, which
  builds the normalised ``option_summary`` behind this dataset) copies ``mark_iv``, ``bid_iv``
  and ``ask_iv`` from Deribit's ticker unchanged. A row whose ``mark_iv`` is below
  :data:`MIN_PERCENT_IV` is not in percent (or is nonsense) and is rejected as ``bad_price``.
- ``open_interest`` (optional column): the option's open interest as Deribit reports it, in
  underlying units (BTC for BTC options); it rides on the quote for the positioning figures.
  Tardis's ``options_chain`` has no volume column.
- an empty field is absent (None). A bid or ask price of 0 is Deribit's "no order on that side"
  (``best_bid_price: 0.0, best_bid_amount: 0.0`` in its tickers) and is absent too.

The CSV never quotes fields (symbols hold no commas), so a row is split on commas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from engine.errors import FeedDecodeError
from engine.events import Quote
from engine.instruments import InstrumentRegistry
from feeds.json_codec import build_quote

__all__ = ["MIN_PERCENT_IV", "REQUIRED_COLUMNS", "OptionsChainDecoder"]

REQUIRED_COLUMNS: Final = (
    "symbol",
    "timestamp",
    "local_timestamp",
    "bid_price",
    "ask_price",
    "mark_price",
    "mark_iv",
    "underlying_price",
)
"""Columns a header must have; the others are ignored."""

MIN_PERCENT_IV: Final = 1.0
"""Smallest ``mark_iv`` accepted, in percent: a smaller one looks like a decimal."""

_NS_PER_US: Final = 1_000
_INT64_MAX: Final = 2**63 - 1  # timestamps end in the engine's int64 columns


class OptionsChainDecoder:
    """Decodes the rows of one Tardis ``options_chain`` CSV file, given its header.

    Args:
        registry: instruments a row may name (Deribit names are parsed on sight).
        header: the file's first line.
        feed: the feed's name, put into every :class:`~engine.errors.FeedDecodeError`.

    Raises:
        FeedDecodeError: ``schema``: the header lacks a column of :data:`REQUIRED_COLUMNS`.
    """

    __slots__ = ("_feed", "_idx", "_ncols", "_registry")

    def __init__(
        self, registry: InstrumentRegistry, header: bytes | str, *, feed: str = "tardis"
    ) -> None:
        self._registry = registry
        self._feed = feed
        names = _text(header).strip().split(",")
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise FeedDecodeError(
                feed, "schema", f"options_chain header lacks {', '.join(missing)}", header
            )
        self._ncols = len(names)
        self._idx = {name: i for i, name in enumerate(names)}

    def decode(self, line: bytes | str, ts_recv: int | None = None) -> Quote:
        """Decode one data row.

        Args:
            line: one CSV row (a trailing newline is fine).
            ts_recv: receipt time, int UNIX ns; None takes the row's ``local_timestamp``.

        Returns:
            The option's quote: bid/ask/mark in coin (Deribit inverse options), ``iv`` the mark
            IV as a decimal, ``underlying_price`` the expiry's forward in USD,
            ``open_interest`` in underlying units when the file has the column.

        Raises:
            FeedDecodeError: ``schema`` (column count, unparseable number or timestamp, a
                timestamp before 1970 or past int64 nanoseconds, no price), ``bad_price``
                (rules of :func:`feeds.json_codec.build_quote`, or ``mark_iv`` <
                :data:`MIN_PERCENT_IV`), ``unknown_instrument``.
        """
        fields = _text(line).rstrip("\r\n").split(",")
        if len(fields) != self._ncols:
            raise FeedDecodeError(
                self._feed,
                "schema",
                f"expected {self._ncols} columns, got {len(fields)}",
                line,
            )
        try:
            symbol = fields[self._idx["symbol"]]
            ts_event = int(fields[self._idx["timestamp"]]) * _NS_PER_US
            if ts_recv is None:
                ts_recv = int(fields[self._idx["local_timestamp"]]) * _NS_PER_US
            bid = self._number(fields, "bid_price")
            ask = self._number(fields, "ask_price")
            mark = self._number(fields, "mark_price")
            mark_iv_pct = self._number(fields, "mark_iv")
            underlying_price = self._number(fields, "underlying_price")
            open_interest = (
                self._number(fields, "open_interest") if "open_interest" in self._idx else None
            )
        except ValueError as exc:
            raise FeedDecodeError(self._feed, "schema", str(exc), line) from exc
        if not symbol:
            raise FeedDecodeError(self._feed, "schema", "empty symbol", line)
        if not (0 <= ts_event <= _INT64_MAX and 0 <= ts_recv <= _INT64_MAX):
            detail = f"timestamp before 1970 or past int64 ns: {ts_event}, {ts_recv}"
            raise FeedDecodeError(self._feed, "schema", detail, line)
        iv: float | None = None
        if mark_iv_pct is not None:
            if not (math.isfinite(mark_iv_pct) and mark_iv_pct >= MIN_PERCENT_IV):
                raise FeedDecodeError(
                    self._feed,
                    "bad_price",
                    f"mark_iv must be a finite percentage >= {MIN_PERCENT_IV}, got {mark_iv_pct}",
                    line,
                )
            iv = mark_iv_pct / 100.0
        return build_quote(
            self._feed,
            self._registry,
            line,
            instrument=symbol,
            bid=bid or None,  # 0: no bid (Deribit's convention)
            ask=ask or None,  # 0: no ask
            mark=mark,
            iv=iv,
            underlying_price=underlying_price,
            index_price=None,
            ts_event=ts_event,
            ts_recv=ts_recv,
            open_interest=open_interest,
        )

    def _number(self, fields: Sequence[str], column: str) -> float | None:
        text = fields[self._idx[column]]
        return float(text) if text else None


def _text(data: bytes | str) -> str:
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data
