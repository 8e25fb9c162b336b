"""Write a small SPX/SPY/E-mini sample in Databento's DBN format, for the ``kind = "dbn"``
replay feed (docs/us-options.md#data-databento-dbn). Nothing is downloaded: the records are
made here, with a seeded random walk, and encoded by ``databento_dbn`` itself.

Three files, one a dataset, as Databento would deliver them:

- ``opra.dbn.zst`` (``OPRA.PILLAR``, Zstandard): definitions of SPXW and SPY calls and puts
  expiring on 2024-12-20, their ``cbbo-1s`` quotes every second, and open interest
  (``statistics``);
- ``glbx.dbn`` (``GLBX.MDP3``): the ESH5 future and options on it, ``mbp-1`` every second;
- ``xnas.dbn`` (``XNAS.ITCH``): SPY's ``mbp-1``, named by the metadata's symbol mappings only.

Usage: ``.venv/bin/python -m examples.make_spx_dbn OUT_DIR [--seconds N]``; then point a
``[[feeds]] kind = "dbn"`` at the three files.
"""

from __future__ import annotations

import argparse
import io
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import databento_dbn as dbn
from databento_dbn.metadata import MappingInterval

T0_NS = int(datetime(2024, 12, 19, 15, 0, tzinfo=UTC).timestamp()) * 1_000_000_000
SPX_EXPIRY_NS = int(datetime(2024, 12, 20, 21, 0, tzinfo=UTC).timestamp()) * 1_000_000_000
ESH5_EXPIRY_NS = int(datetime(2025, 3, 21, 13, 30, tzinfo=UTC).timestamp()) * 1_000_000_000
SPY_ID = 15144
_S = 1_000_000_000


@dataclass
class _Interval:
    start_date: date
    end_date: date
    symbol: str


@dataclass
class _Mapping:
    raw_symbol: str
    intervals: Sequence[MappingInterval]


def _fixed(price: float) -> int:
    """A price rounded to the cent, as DBN's 1e-9 fixed point."""
    return round(price * 100) * 10_000_000


def _definition(
    ident: int,
    symbol: str,
    cls: str,
    *,
    expiration: int,
    strike_price: int = dbn.UNDEF_PRICE,
    unit_of_measure_qty: int = dbn.UNDEF_PRICE,
    underlying: str = "",
    underlying_id: int = 0,
) -> dbn.InstrumentDefMsg:
    return dbn.InstrumentDefMsg(
        publisher_id=1, instrument_id=ident, ts_event=T0_NS, ts_recv=T0_NS,
        min_price_increment=_fixed(0.01), display_factor=_fixed(1.0), raw_symbol=symbol,
        asset=symbol.split()[0][:6], security_type="",
        instrument_class=dbn.InstrumentClass.from_str(cls),
        security_update_action=dbn.SecurityUpdateAction.from_str("A"), expiration=expiration,
        strike_price=strike_price, unit_of_measure_qty=unit_of_measure_qty,
        underlying=underlying, underlying_id=underlying_id,
    )  # fmt: skip


def _book(ident: int, ts: int, bid: float, ask: float, consolidated: bool) -> dbn.DBNRecord:
    if consolidated:
        return dbn.CBBOMsg(
            rtype=dbn.RType.CBBO_1S, publisher_id=1, instrument_id=ident, ts_event=ts,
            price=dbn.UNDEF_PRICE, size=0, side=dbn.Side.from_str("N"), ts_recv=ts,
            levels=dbn.ConsolidatedBidAskPair(  # type: ignore[arg-type]  # one level
                bid_px=_fixed(bid), ask_px=_fixed(ask), bid_sz=20, ask_sz=20),
        )  # fmt: skip
    return dbn.MBP1Msg(
        publisher_id=1, instrument_id=ident, ts_event=ts, price=_fixed(bid), size=1,
        action=dbn.Action.from_str("A"), side=dbn.Side.from_str("B"), depth=0, ts_recv=ts,
        levels=dbn.BidAskPair(  # type: ignore[arg-type]  # one level
            bid_px=_fixed(bid), ask_px=_fixed(ask), bid_sz=5, ask_sz=5),
    )  # fmt: skip


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _black(is_call: bool, forward: float, strike: float, years: float, vol: float) -> float:
    """Undiscounted Black price: good enough for a sample's quotes."""
    sd = vol * math.sqrt(years)
    d1 = math.log(forward / strike) / sd + sd / 2
    call = forward * _normal_cdf(d1) - strike * _normal_cdf(d1 - sd)
    return call if is_call else call - forward + strike


def _write(
    path: Path, dataset: str, records: list[dbn.DBNRecord], mappings: list[_Mapping]
) -> None:
    metadata = dbn.Metadata(
        dataset=dataset, start=T0_NS, stype_in=dbn.SType.from_str("raw_symbol"),
        stype_out=dbn.SType.from_str("instrument_id"), schema=None,
        symbols=[m.raw_symbol for m in mappings], mappings=mappings,
    )  # fmt: skip
    records.sort(key=lambda r: r.ts_event)  # ts_event = ts_recv in this sample
    raw = bytes(metadata) + b"".join(bytes(r) for r in records)
    if path.suffix == ".zst":
        out = io.BytesIO()
        with dbn.Transcoder(
            out, dbn.Encoding.from_str("dbn"), dbn.Compression.from_str("zstd")
        ) as t:
            t.write(raw)
        raw = out.getvalue()
    path.write_bytes(raw)


def make_sample(out: Path, seconds: int = 60, seed: int = 7) -> list[Path]:
    """Write the three files into ``out``; their paths."""
    rng = random.Random(seed)  # noqa: S311  # a reproducible sample, no secret
    spx, es_basis = 5900.0, 35.0
    opra: list[dbn.DBNRecord] = []
    glbx: list[dbn.DBNRecord] = [
        _definition(1, "ESH5", "F", expiration=ESH5_EXPIRY_NS, unit_of_measure_qty=_fixed(50))
    ]
    options: list[tuple[int, bool, float, float]] = []  # id, call, strike, scale of SPX
    for i, strike in enumerate((5850, 5900, 5950)):
        for is_call in (True, False):
            cp = "C" if is_call else "P"
            series = (
                (100 + 2 * i + is_call, "SPXW", strike),
                (200 + 2 * i + is_call, "SPY", strike / 10),
            )
            for ident, root, k in series:
                symbol = f"{root:<6}241220{cp}{round(k * 1000):08d}"
                opra.append(
                    _definition(
                        ident, symbol, cp, expiration=SPX_EXPIRY_NS, strike_price=_fixed(k),
                        unit_of_measure_qty=_fixed(100.0), underlying=root[:3],
                    )
                )  # fmt: skip
                oi = dbn.StatMsg(
                    publisher_id=1, instrument_id=ident, ts_event=T0_NS, ts_recv=T0_NS, ts_ref=0,
                    price=dbn.UNDEF_PRICE, quantity=rng.randint(500, 20_000),
                    stat_type=dbn.StatType.OPEN_INTEREST,  # type: ignore[arg-type]  # stubs: int
                )  # fmt: skip
                opra.append(oi)
                options.append((ident, is_call, k, 1.0 if root == "SPXW" else 0.1))
    es_opts = [(20 + j, f"ESH5 {'C' if c else 'P'}{k}", c, float(k)) for j, (k, c) in
               enumerate((k, c) for k in (5900, 6000) for c in (True, False))]  # fmt: skip
    for ident, symbol, is_call, k in es_opts:
        glbx.append(_definition(ident, symbol, "C" if is_call else "P", expiration=ESH5_EXPIRY_NS,
            strike_price=_fixed(k), underlying="ESH5", underlying_id=1))  # fmt: skip
    xnas: list[dbn.DBNRecord] = []
    for s in range(1, seconds + 1):
        ts = T0_NS + s * _S
        spx *= math.exp(rng.gauss(0.0, 0.0004))
        years = (SPX_EXPIRY_NS - ts) / (365 * 86_400 * _S)
        for ident, is_call, k, scale in options:
            mid = max(_black(is_call, spx * scale, k, years, 0.14), 0.05)
            opra.append(_book(ident, ts, mid - 0.05, mid + 0.05, consolidated=True))
        fut = spx + es_basis
        glbx.append(_book(1, ts, fut - 0.125, fut + 0.125, consolidated=False))
        es_years = (ESH5_EXPIRY_NS - ts) / (365 * 86_400 * _S)
        for ident, _, is_call, k in es_opts:
            mid = _black(is_call, fut, k, es_years, 0.15)
            glbx.append(_book(ident, ts, mid - 0.25, mid + 0.25, consolidated=False))
        xnas.append(_book(SPY_ID, ts, spx / 10 - 0.01, spx / 10 + 0.01, consolidated=False))
    day = date(2024, 12, 19)
    spy_map = [_Mapping("SPY", [_Interval(day, day + timedelta(days=1), str(SPY_ID))])]
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "opra.dbn.zst", out / "glbx.dbn", out / "xnas.dbn"]
    _write(paths[0], "OPRA.PILLAR", opra, [])
    _write(paths[1], "GLBX.MDP3", glbx, [])
    _write(paths[2], "XNAS.ITCH", xnas, spy_map)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out", type=Path, help="the folder to write the three files into")
    parser.add_argument("--seconds", type=int, default=60, help="seconds of quotes (default 60)")
    args = parser.parse_args(argv)
    for path in make_sample(args.out, args.seconds):
        print(path)  # noqa: T201  # the script's output: the files written
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
