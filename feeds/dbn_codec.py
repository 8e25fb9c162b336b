"""Databento records -> riskd events and instruments, sans-I/O.

Records come from :class:`feeds.dbn_stream.DbnReader` (``databento_dbn``'s decoder), each with
the dataset of its file. Instrument ids are the venue's and a dataset's own (OPRA's and CME's
overlap), so names are kept per (dataset, instrument_id).

- ``definition`` (:class:`databento_dbn.InstrumentDefMsg`): names the instrument id. Its
  ``raw_symbol`` goes through the registry's parsers (OSI ``SPXW  241220P05900000``, CME
  ``ESZ4``, ``ESZ4 C5900``, ``SPY``), whose terms win; the definition's own fields are checked
  against them (:func:`disagreements`) and a disagreement is counted. A symbol the parsers do
  not know is built from the fields (:func:`instrument_from_definition`). Either way the
  instrument is added to the registry (definitions stay).
- without a definition, the file's ``Metadata.mappings`` (input symbol -> instrument id over
  UTC date intervals, end exclusive, as Databento writes them for ``stype_in = raw_symbol``)
  name the id: the symbol then goes through the parsers.
- ``cbbo-1s``/``cbbo-1m``/``tcbbo`` (:class:`~databento_dbn.CBBOMsg`), ``cmbp-1``
  (:class:`~databento_dbn.CMBP1Msg`), ``mbp-1``/``tbbo`` (:class:`~databento_dbn.MBP1Msg`),
  ``bbo-1s``/``bbo-1m`` (:class:`~databento_dbn.BBOMsg`): the top of the book. For an option,
  a :class:`~engine.events.Quote` (bid, ask; a side without a price or with size 0 is absent;
  an option on a future carries its future's latest price as ``underlying_price``). For a
  future, a stock or an index, a :class:`~engine.events.Tick` at the mid, else at the last
  trade's price (a trade action, or the BBO schemas' last price); a one-sided book without a
  trade gives nothing.
- ``statistics`` (:class:`~databento_dbn.StatMsg`) of type ``OPEN_INTEREST``: an option's open
  interest, an :class:`~engine.events.OpenInterest` in underlying units (contracts x the
  multiplier: 100 index units or shares per SPX/SPY contract, 50 per E-mini option); other
  statistics are skipped.
- every other record (trades, OHLCV, status, imbalance, system, error) is skipped.

Prices are fixed-point int64 in units of 1e-9 (``databento_dbn.FIXED_PRICE_SCALE``), in the
instrument's quote currency (USD; E-mini prices in index points); ``UNDEF_PRICE`` (int64 max)
is "no price". Timestamps are int UNIX ns; ``UNDEF_TIMESTAMP`` (uint64 max) is "none".
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, date, datetime
from typing import Final

import databento_dbn as dbn

from engine.errors import FeedDecodeError
from engine.events import OpenInterest, Quote, Tick
from engine.instruments import Delivery, Exercise, Instrument, InstrumentRegistry, Kind
from feeds.json_codec import build_quote

__all__ = [
    "DbnDecoder",
    "disagreements",
    "fixed_price",
    "instrument_from_definition",
    "record_time",
]

_SCALE: Final = dbn.FIXED_PRICE_SCALE  # 1e9 units per currency unit
_UNDEF_TS: Final = dbn.UNDEF_TIMESTAMP
_INT64_MAX: Final = 2**63 - 1
_NS_PER_DAY: Final = 86_400 * 1_000_000_000
_STRIKE_RTOL: Final = 1e-9
_OPTION_CLASSES: Final = {dbn.InstrumentClass.CALL: True, dbn.InstrumentClass.PUT: False}
_STYPE_ID: Final = dbn.SType.from_str("instrument_id")  # the stubs type members as str
_BookRecord = dbn.CBBOMsg | dbn.CMBP1Msg | dbn.MBP1Msg | dbn.BBOMsg


def fixed_price(value: int) -> float | None:
    """A DBN fixed-point price (int64, 1e-9 units) as a float; None for ``UNDEF_PRICE``. The
    division of two ints is correctly rounded, so ``5900.25`` comes back exactly."""
    return None if value == dbn.UNDEF_PRICE else value / _SCALE


def record_time(record: dbn.DBNRecord) -> int:
    """The time a replay orders and paces a record by: its ``ts_recv`` (Databento's receipt,
    the order of a DBN file), else its ``ts_event``; int UNIX ns."""
    ts_recv = getattr(record, "ts_recv", _UNDEF_TS)
    return int(record.ts_event if ts_recv == _UNDEF_TS else ts_recv)


def _venue(dataset: str) -> str:
    head = dataset.split(".")[0].lower()
    return {"glbx": "cme"}.get(head, head)  # OPRA.PILLAR -> opra, GLBX.MDP3 -> cme


def instrument_from_definition(
    d: dbn.InstrumentDefMsg, dataset: str, underlying_future: Instrument | None = None
) -> Instrument | None:
    """An instrument from a definition's own fields, for a symbol riskd's parsers do not know;
    None for what riskd does not price (spreads, bonds, FX) or a definition lacking a field.

    Options: strike, ``expiration`` (as the venue states it, UTC), call or put from
    ``instrument_class``, multiplier from ``unit_of_measure_qty`` (1 when undefined), exercise
    and delivery from the ISO 10962 ``cfi`` code (``OCASPS``: 3rd letter A/E, 5th P/C) when it
    has them, else American and physical (US equity options). ``underlying_future``: the
    instrument of the definition's ``underlying_id``, when that is a future (an option on it,
    priced on it); else the index is the definition's ``underlying``.
    """
    cls = d.instrument_class
    venue = _venue(dataset)
    name = d.raw_symbol
    mult = fixed_price(d.unit_of_measure_qty) or 1.0
    expiry_ns = None if d.expiration == _UNDEF_TS else int(d.expiration)
    if cls in _OPTION_CLASSES:
        strike = fixed_price(d.strike_price)
        if strike is None or expiry_ns is None:
            return None
        cfi = d.cfi
        future = (
            underlying_future
            if underlying_future and underlying_future.kind == Kind.FUTURE
            else None
        )
        exercise = Exercise.EUROPEAN if cfi[2:3] == "E" else Exercise.AMERICAN
        delivery = Delivery.CASH if cfi[4:5] == "C" and future is None else Delivery.PHYSICAL
        underlying = d.underlying or d.asset
        return Instrument(
            name=name,
            kind=Kind.OPTION,
            underlying=future.underlying if future else underlying,
            index=future.index if future else underlying,
            expiry_ns=expiry_ns,
            strike=strike,
            is_call=_OPTION_CLASSES[cls],
            multiplier=mult,
            venue=venue,
            exercise=exercise,
            delivery=delivery,
            underlying_future=future.name if future else None,
        )
    if cls == dbn.InstrumentClass.FUTURE and expiry_ns is not None:
        asset = d.asset or name
        return Instrument(
            name=name, kind=Kind.FUTURE, underlying=asset, index=asset, expiry_ns=expiry_ns,
            multiplier=mult, venue=venue,
        )  # fmt: skip
    if cls == dbn.InstrumentClass.STOCK:
        return Instrument(name=name, kind=Kind.SPOT, underlying=name, index=name, venue=venue)
    if cls == dbn.InstrumentClass.INDEX:
        return Instrument(name=name, kind=Kind.INDEX, underlying=name, index=name, venue=venue)
    return None


def disagreements(inst: Instrument, d: dbn.InstrumentDefMsg) -> list[str]:
    """The fields in which a definition contradicts the terms riskd parsed from its symbol:
    ``call_put``, ``strike`` (beyond 1e-9 relative), ``expiry`` (more than a day apart: a venue
    may state the last trading time, riskd the settlement instant), ``multiplier`` (options on
    spot and futures, where ``unit_of_measure_qty`` is defined), ``underlying`` (options, where
    the definition names one: riskd's underlying, its future or its index)."""
    out = []
    cls = d.instrument_class
    if inst.kind == Kind.OPTION:
        if cls in _OPTION_CLASSES and _OPTION_CLASSES[cls] != inst.is_call:
            out.append("call_put")
        strike = fixed_price(d.strike_price)
        if (
            strike is not None
            and inst.strike is not None
            and not math.isclose(strike, inst.strike, rel_tol=_STRIKE_RTOL)
        ):
            out.append("strike")
        if d.underlying and d.underlying not in (
            inst.underlying,
            inst.underlying_future,
            inst.index,
        ):
            out.append("underlying")
    expiry_ns = None if d.expiration == _UNDEF_TS else int(d.expiration)
    if expiry_ns is not None and abs(expiry_ns - (inst.expiry_ns or expiry_ns)) > _NS_PER_DAY:
        out.append("expiry")
    mult = fixed_price(d.unit_of_measure_qty)
    checked = inst.underlying_future is None and inst.kind != Kind.INDEX
    if checked and mult is not None and not math.isclose(mult, inst.multiplier, rel_tol=1e-9):
        out.append("multiplier")
    return out


def _payload(record: dbn.DBNRecord) -> str:
    return f"{type(record).__name__} instrument_id={record.instrument_id} ts={record_time(record)}"


class DbnDecoder:
    """Turns the records of one replay's DBN files into events, keeping the instrument ids'
    names per dataset.

    Args:
        registry: where definitions go and names are parsed.
        feed: the feed's name, for errors.

    Attributes:
        disagreements: definitions that contradict riskd's parsed terms, by field.
        skipped: records that make no event and are no error, by kind.
        last_disagreement: the latest of those, as text (for the log).
    """

    __slots__ = (
        "_feed",
        "_last_px",
        "_mappings",
        "_names",
        "_registry",
        "disagreements",
        "last_disagreement",
        "skipped",
    )

    def __init__(self, registry: InstrumentRegistry, feed: str = "dbn") -> None:
        self._registry = registry
        self._feed = feed
        self._names: dict[tuple[str, int], Instrument] = {}
        self._mappings: dict[tuple[str, int], list[tuple[date, date, str]]] = {}
        self._last_px: dict[str, float] = {}  # latest tick price by instrument name
        self.disagreements: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.last_disagreement = ""

    def add_metadata(self, metadata: dbn.Metadata) -> None:
        """Learn a file's symbol mappings (input symbol -> instrument id, by date)."""
        dataset = metadata.dataset
        swap = metadata.stype_in == _STYPE_ID
        for symbol_in, intervals in metadata.mappings.items():
            for iv in intervals:
                symbol, ident = (iv["symbol"], symbol_in) if swap else (symbol_in, iv["symbol"])
                if not ident.isdigit() or not symbol:
                    continue  # stype_out is not instrument ids: nothing to map records by
                entry = (iv["start_date"], iv["end_date"], symbol)
                self._mappings.setdefault((dataset, int(ident)), []).append(entry)

    def instrument(self, dataset: str, instrument_id: int, ts_ns: int) -> Instrument | None:
        """The instrument of an id at ``ts_ns``: from a definition, else the mappings."""
        inst = self._names.get((dataset, instrument_id))
        if inst is not None:
            return inst
        intervals = self._mappings.get((dataset, instrument_id))
        if not intervals:
            return None
        day = datetime.fromtimestamp(ts_ns / 1e9, UTC).date()
        for start, end, symbol in intervals:
            if start <= day < end:
                return self._registry.get(symbol)
        return None

    def decode(self, record: dbn.DBNRecord, dataset: str) -> list[Quote | Tick | OpenInterest]:
        """The events of one record of ``dataset`` (none for definitions and skipped ones).

        Raises:
            FeedDecodeError: ``schema`` (no usable timestamp), ``unknown_instrument``,
                ``bad_price`` (a crossed or negative quote, a price <= 0, a negative open
                interest), ``unsupported_instrument`` (a definition riskd cannot price).
        """
        if isinstance(record, dbn.InstrumentDefMsg):
            self._define(record, dataset)
            return []
        if isinstance(record, _BookRecord):
            return self._book(record, dataset)
        if isinstance(record, dbn.StatMsg):
            return self._stat(record, dataset)
        self.skipped[type(record).__name__] += 1
        return []

    def _define(self, d: dbn.InstrumentDefMsg, dataset: str) -> None:
        if d.security_update_action == dbn.SecurityUpdateAction.DELETE:
            self._names.pop((dataset, d.instrument_id), None)
            return
        inst = self._registry.get(d.raw_symbol)
        if inst is not None:
            bad = disagreements(inst, d)
            for field in bad:
                self.disagreements[field] += 1
            if bad:
                self.last_disagreement = f"{d.raw_symbol}: {', '.join(bad)}"
        else:
            future = self._names.get((dataset, d.underlying_id)) if d.underlying_id else None
            try:
                inst = instrument_from_definition(d, dataset, future)
            except ValueError as exc:  # Instrument's own checks (strike <= 0 ...)
                raise FeedDecodeError(
                    self._feed, "unsupported_instrument", str(exc), _payload(d)
                ) from exc
            if inst is None:
                cls = d.instrument_class
                detail = f"{d.raw_symbol!r}: instrument class {cls} is not priced"
                raise FeedDecodeError(self._feed, "unsupported_instrument", detail, _payload(d))
        self._registry.add(inst)
        self._names[(dataset, d.instrument_id)] = inst

    def _known(self, record: dbn.DBNRecord, dataset: str) -> tuple[Instrument, int, int]:
        """The record's instrument, ts_event and ts_recv (int UNIX ns)."""
        ts_recv = record_time(record)
        ts_event = int(record.ts_event)
        if ts_event > _INT64_MAX:  # UNDEF_TIMESTAMP: the receipt time stands in
            ts_event = ts_recv
        if not 0 <= ts_recv <= _INT64_MAX:
            raise FeedDecodeError(self._feed, "schema", "no timestamp", _payload(record))
        inst = self.instrument(dataset, record.instrument_id, ts_recv)
        if inst is None:
            detail = f"no definition or mapping for {dataset} instrument_id {record.instrument_id}"
            raise FeedDecodeError(self._feed, "unknown_instrument", detail, _payload(record))
        return inst, ts_event, ts_recv

    def _book(self, r: _BookRecord, dataset: str) -> list[Quote | Tick | OpenInterest]:
        inst, ts_event, ts_recv = self._known(r, dataset)
        level = r.levels[0]
        bid = fixed_price(level.bid_px) if level.bid_sz > 0 else None
        ask = fixed_price(level.ask_px) if level.ask_sz > 0 else None
        if inst.kind == Kind.OPTION:
            if bid is None and ask is None:
                self.skipped["empty_book"] += 1
                return []
            future = inst.underlying_future
            return [
                build_quote(
                    self._feed, self._registry, _payload(r), instrument=inst.name, bid=bid,
                    ask=ask, mark=None, iv=None,
                    underlying_price=self._last_px.get(future) if future else None,
                    index_price=None, ts_event=ts_event, ts_recv=ts_recv,
                )
            ]  # fmt: skip
        if bid is not None and ask is not None:
            price: float | None = (bid + ask) / 2.0
        elif isinstance(r, dbn.BBOMsg | dbn.CBBOMsg) or r.action == dbn.Action.TRADE:
            price = fixed_price(r.price)  # the last trade's (BBO schemas) or this trade's
        else:
            price = None
        if price is None:
            self.skipped["one_sided"] += 1
            return []
        if not (math.isfinite(price) and price > 0.0):
            detail = f"{inst.name} price must be > 0, got {price}"
            raise FeedDecodeError(self._feed, "bad_price", detail, _payload(r))
        self._last_px[inst.name] = price
        return [Tick(instrument=inst.name, price=price, ts_event=ts_event, ts_recv=ts_recv)]

    def _stat(self, r: dbn.StatMsg, dataset: str) -> list[Quote | Tick | OpenInterest]:
        stat = r.stat_type
        if stat != dbn.StatType.OPEN_INTEREST:
            label = stat.name.lower() if isinstance(stat, dbn.StatType) else str(stat)
            self.skipped[f"stat_{label}"] += 1
            return []
        if r.update_action == dbn.StatUpdateAction.DELETE or r.quantity == dbn.UNDEF_STAT_QUANTITY:
            self.skipped["stat_open_interest_undefined"] += 1
            return []
        inst, ts_event, ts_recv = self._known(r, dataset)
        if inst.kind != Kind.OPTION:
            self.skipped["open_interest_not_option"] += 1
            return []
        if r.quantity < 0:
            detail = f"{inst.name} open interest must be >= 0, got {r.quantity}"
            raise FeedDecodeError(self._feed, "bad_price", detail, _payload(r))
        return [
            OpenInterest(
                instrument=inst.name,
                open_interest=r.quantity * inst.multiplier,
                ts_event=ts_event,
                ts_recv=ts_recv,
            )
        ]
