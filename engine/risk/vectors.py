"""The common scenario set, and each book's P&L vectors and exposures on it: what shards publish
and ``riskd aggregate`` sums into exact cross-shard VaR and ES (docs/scaling.md#the-aggregator).

With ``[risk] scenario_underlyings`` set, every book's VaR and ES come from one
:class:`ScenarioSet` over those underlyings, in that order, whatever the book holds:

- historical: the window's moves of the days on which every one of them moved (scaled to the
  horizon by √N, as :func:`engine.risk.var.historical`);
- Monte Carlo: ``mc_scenarios`` draws of N(0, N Σ) over all of them, seeded with ``mc_seed``
  (:func:`engine.risk.var.mc_draws`);
- the parametric methods: the covariance Σ of those same days, with a USD delta and gamma per
  underlying of the set (zero where the book holds none).

A book's P&L in a scenario is then a sum over its underlyings' positions, so the P&L vectors of
the parts of a book held by different shards (each revaluing its own columns of the same
scenarios) add up to the vector of the whole book, and its exposures likewise: VaR and ES of the
sum (:func:`var_payload_of`) are the figures of one daemon that holds the whole book.

Pure: arrays and bytes in, arrays, bytes and payloads out. The wire form of a shard's vectors is
:func:`encode_vectors` / :func:`decode_vectors` (little-endian float64, docs/redis.md).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import msgspec
import numpy as np
import numpy.typing as npt

from engine.outputs import RISK_UNITS, VAR_METHODS, VarMethod, VarPayload
from engine.risk import var
from engine.risk.history import MoveHistory
from engine.risk.scenarios import NO_PRICES, any_valued, book_scenario_pnl
from engine.state import AGG_FIELDS, BookRisk

__all__ = [
    "DTYPE",
    "FIRM",
    "VAR_UNITS",
    "BookVectors",
    "CommonVectors",
    "ScenarioSet",
    "SetFacts",
    "ShardVectors",
    "VarSettings",
    "VectorsHeader",
    "aggregate_payloads",
    "book_vectors",
    "combine",
    "common_vectors",
    "decode_vectors",
    "encode_vectors",
    "firm_vectors",
    "not_valued",
    "scenario_set",
    "shards_disagree",
    "var_payload_of",
    "var_payloads",
]

FloatArray = npt.NDArray[np.float64]

DTYPE: Final = np.dtype("<f8")
"""The vectors' wire type: little-endian IEEE 754 float64, row-major."""
FIRM: Final = "*"
"""The key (and ``book``) of the firm-wide payload: every book together."""
OK: Final = "ok"
NO_POSITIONS: Final = "no positions"

_DELTA_USD: Final = AGG_FIELDS.index("delta_usd")
_CASH_GAMMA: Final = AGG_FIELDS.index("cash_gamma")


@dataclass(frozen=True, slots=True)
class VarSettings:
    """What the figures of a scenario set depend on (``[risk]``'s keys of the same names)."""

    confidence: float
    es_confidence: float
    horizon_days: float
    method: VarMethod
    mc_scenarios: int
    mc_seed: int
    scenario_underlyings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ScenarioSet:
    """The common scenarios of every book (module docstring).

    Attributes:
        underlyings: the set's underlyings, in order: the columns of every array.
        id: a digest of everything the scenarios are drawn from (the underlyings, the window's
            moves, the seed, the number of draws, the horizon): two processes with the same id
            value books on the same scenarios.
        history_days: days of moves in the window.
        status: ``"ok"``, or why no method can run (fewer than 2 days of moves).
        cov: the one-day covariance of the moves, 2U x 2U (returns, then vol moves); None
            unless ``status`` is ok.
        hist_ret, hist_dvol: the window's moves scaled to the horizon, (days, U).
        mc_ret, mc_dvol: the Monte Carlo draws at the horizon, (mc_scenarios, U); (0, U) unless
            ``status`` is ok.
    """

    underlyings: tuple[str, ...]
    id: str
    history_days: int
    status: str
    cov: FloatArray | None
    hist_ret: FloatArray
    hist_dvol: FloatArray
    mc_ret: FloatArray
    mc_dvol: FloatArray


def scenario_set(history: MoveHistory, cfg: VarSettings) -> ScenarioSet:
    """The common scenarios of ``cfg.scenario_underlyings`` from the window ``history``."""
    unds = cfg.scenario_underlyings
    u = len(unds)
    ret, dvol = history.moves(unds)
    n_days = ret.shape[0]
    digest = hashlib.sha256()
    for part in ("\x1f".join(unds), repr((cfg.mc_seed, cfg.mc_scenarios, cfg.horizon_days))):
        digest.update(part.encode())
        digest.update(b"\x1e")
    digest.update(np.ascontiguousarray(ret, DTYPE).tobytes())
    digest.update(np.ascontiguousarray(dvol, DTYPE).tobytes())
    empty = np.zeros((0, u))
    if n_days < 2:
        return ScenarioSet(
            unds, digest.hexdigest()[:16], n_days, f"{n_days} days of moves, need 2", None,
            empty, empty, empty, empty,
        )  # fmt: skip
    x = np.hstack([ret, dvol])
    cov: FloatArray = x.T @ x / n_days  # as MoveHistory.covariance
    mc_ret, mc_dvol = var.mc_draws(cov, cfg.mc_scenarios, cfg.mc_seed, cfg.horizon_days)
    scale = math.sqrt(cfg.horizon_days)
    return ScenarioSet(
        underlyings=unds,
        id=digest.hexdigest()[:16],
        history_days=n_days,
        status=OK,
        cov=cov,
        hist_ret=np.ascontiguousarray(ret * scale),
        hist_dvol=np.ascontiguousarray(dvol * scale),
        mc_ret=mc_ret,
        mc_dvol=mc_dvol,
    )


@dataclass(frozen=True, slots=True)
class BookVectors:
    """A book (or a shard's part of it) on a scenario set: P&L per scenario (USD) and its USD
    delta and gamma per underlying of the set (``gamma_usd``: d²P&L/dr², Γ S² + Δ S).

    Attributes:
        book: the book's name (:data:`FIRM`: every book).
        valuation_ns: when its positions were valued.
        underlyings: the underlyings it holds, sorted.
        positions: its open positions.
        status: ``"ok"``, ``"no positions"``, or why it cannot be valued on the set.
        historical, monte_carlo: P&L per scenario of the set (empty unless ok).
        delta_usd, gamma_usd: one entry per underlying of the set.
    """

    book: str
    valuation_ns: int
    underlyings: list[str]
    positions: int
    status: str
    historical: FloatArray
    monte_carlo: FloatArray
    delta_usd: FloatArray
    gamma_usd: FloatArray


def book_vectors(br: BookRisk, sset: ScenarioSet, horizon_days: float) -> BookVectors:
    """``br`` revalued under every scenario of ``sset`` (:func:`book_scenario_pnl`), with its
    exposures laid out over the set's underlyings."""
    u = len(sset.underlyings)
    delta, gamma = np.zeros(u), np.zeros(u)
    status = _status(br, sset)
    hist = mc = np.zeros(0)
    if status == OK:
        cols = np.array([sset.underlyings.index(x) for x in br.underlyings], dtype=np.int64)
        delta_usd = br.figures[:, _DELTA_USD]
        delta[cols] = delta_usd
        gamma[cols] = 100.0 * br.figures[:, _CASH_GAMMA] + delta_usd  # docs/risk.md
        book = br.positions._replace(und=np.ascontiguousarray(cols[br.positions.und]))
        hist = book_scenario_pnl(book, sset.hist_ret, sset.hist_dvol, horizon_days).pnl[0]
        mc = book_scenario_pnl(book, sset.mc_ret, sset.mc_dvol, horizon_days).pnl[0]
    return BookVectors(
        book=br.book,
        valuation_ns=br.valuation_ns,
        underlyings=list(br.underlyings),
        positions=int(br.positions.kind.size),
        status=status,
        historical=hist,
        monte_carlo=mc,
        delta_usd=delta,
        gamma_usd=gamma,
    )


def not_valued(br: BookRisk, n_days: int) -> str | None:
    """Why no VaR method can value ``br`` on a window of ``n_days`` moves of its underlyings:
    it holds nothing, the window is too short, or none of its positions is priced yet; None
    when they can."""
    if not br.underlyings:
        return NO_POSITIONS
    if n_days < 2:
        return f"{n_days} days of moves, need 2"
    if not any_valued(br.positions):
        return NO_PRICES
    return None


def _status(br: BookRisk, sset: ScenarioSet) -> str:
    if not br.underlyings:
        return NO_POSITIONS
    if sset.status != OK:
        return sset.status
    missing = [x for x in br.underlyings if x not in sset.underlyings]
    if missing:
        return f"{', '.join(missing)} not in [risk] scenario_underlyings"
    if not any_valued(br.positions):
        return NO_PRICES
    return OK


def combine(book: str, parts: Sequence[BookVectors]) -> BookVectors:
    """The parts of one book (or several books: the firm) together: P&L vectors and exposures
    summed, positions counted, underlyings united; the oldest valuation time; ``"ok"`` when
    every part with positions that can be valued is, else the first other status (a part
    with no prices yet adds nothing, as its positions add nothing to a revaluation: the
    whole is :data:`NO_PRICES` only when every part with positions is)."""
    held = [p for p in parts if p.status not in (NO_POSITIONS, NO_PRICES)]
    bad = [p.status for p in held if p.status != OK]
    unpriced = any(p.status == NO_PRICES for p in parts)
    status = bad[0] if bad else (OK if held else NO_PRICES if unpriced else NO_POSITIONS)
    u = parts[0].delta_usd.size

    def total(name: str, size: int) -> FloatArray:
        out = np.zeros(size)
        for p in held:
            out += getattr(p, name)
        return out

    ok = status == OK
    return BookVectors(
        book=book,
        valuation_ns=min(p.valuation_ns for p in parts),
        underlyings=sorted({x for p in parts for x in p.underlyings}),
        positions=sum(p.positions for p in parts),
        status=status,
        historical=total("historical", held[0].historical.size) if ok else np.zeros(0),
        monte_carlo=total("monte_carlo", held[0].monte_carlo.size) if ok else np.zeros(0),
        delta_usd=total("delta_usd", u),
        gamma_usd=total("gamma_usd", u),
    )


def firm_vectors(books: Iterable[BookVectors]) -> BookVectors:
    """Every book together, under :data:`FIRM`."""
    return combine(FIRM, list(books))


@dataclass(frozen=True, slots=True)
class SetFacts:
    """What a ``var`` payload says of the scenario set its figures come from."""

    id: str
    history_days: int
    cov: FloatArray | None

    @classmethod
    def of(cls, sset: ScenarioSet) -> SetFacts:
        return cls(sset.id, sset.history_days, sset.cov)


@dataclass(frozen=True, slots=True)
class CommonVectors:
    """Every book of a daemon (or a shard) on one scenario set."""

    sset: ScenarioSet
    books: list[BookVectors]


def common_vectors(
    books: Sequence[BookRisk], history: MoveHistory, cfg: VarSettings
) -> CommonVectors:
    """``books`` on the common scenario set of ``cfg`` drawn from ``history``."""
    sset = scenario_set(history, cfg)
    return CommonVectors(sset, [book_vectors(br, sset, cfg.horizon_days) for br in books])


def var_payloads(
    common: CommonVectors, cfg: VarSettings, now_ns: int, *, firm: bool = True
) -> list[tuple[str, VarPayload]]:
    """The ``var`` payload of each book of ``common`` (key: the book) and, with ``firm`` and
    at least one book, of every book together (key :data:`FIRM`)."""
    facts = SetFacts.of(common.sset)
    books = common.books
    out = [(b.book, var_payload_of(b, facts, cfg, now_ns)) for b in books]
    if firm and books:
        out.append((FIRM, var_payload_of(firm_vectors(books), facts, cfg, now_ns)))
    return out


def var_payload_of(
    v: BookVectors,
    facts: SetFacts,
    cfg: VarSettings,
    now_ns: int,
    shards: dict[str, int] | None = None,
) -> VarPayload:
    """The ``var`` payload of ``v`` (VaR and ES by every method, USD losses; nulls and the
    reason in ``status`` where a method cannot run). ``shards``: the valuation time of each
    shard's input (the aggregator's payloads)."""
    c, ce, h = cfg.confidence, cfg.es_confidence, cfg.horizon_days
    figures: dict[str, var.VaR] = {}
    if v.status == OK and facts.cov is not None:
        u = v.delta_usd.size
        cov = facts.cov[:u, :u]
        figures["delta_normal"] = var.delta_normal(v.delta_usd, cov, c, ce, h)
        figures["delta_gamma"] = var.delta_gamma(v.delta_usd, v.gamma_usd, cov, c, ce, h)
        figures["historical"] = var.empirical(v.historical, c, ce, h, "historical")
        figures["monte_carlo"] = var.empirical(v.monte_carlo, c, ce, h, "monte carlo")

    return figures_payload(
        figures,
        cfg,
        dict.fromkeys(VAR_METHODS, v.status),
        ts_ns=now_ns,
        valuation_ts_ns=v.valuation_ns,
        book=v.book,
        underlyings=v.underlyings,
        history_days=facts.history_days,
        positions=v.positions,
        scenario_set=facts.id,
        shards=shards,
    )


def figures_payload(
    figures: dict[str, var.VaR],
    cfg: VarSettings,
    status: dict[str, str],
    *,
    ts_ns: int,
    valuation_ts_ns: int,
    book: str,
    underlyings: list[str],
    history_days: int,
    positions: int,
    scenario_set: str | None = None,
    shards: dict[str, int] | None = None,
) -> VarPayload:
    """The ``var`` payload of a book's ``figures`` by method (a method missing: nulls, and
    ``status`` says why), ``cfg``'s method's as its ``var`` and ``es``."""

    def loss(method: str) -> tuple[float | None, float | None]:
        f = figures.get(method)
        return (float(f.var), float(f.es)) if f else (None, None)

    var_, es = loss(cfg.method)
    var_dn, es_dn = loss("delta_normal")
    var_dg, es_dg = loss("delta_gamma")
    var_h, es_h = loss("historical")
    var_mc, es_mc = loss("monte_carlo")
    return VarPayload(
        ts_ns=ts_ns,
        valuation_ts_ns=valuation_ts_ns,
        book=book,
        underlyings=underlyings,
        confidence=cfg.confidence,
        es_confidence=cfg.es_confidence,
        horizon_days=cfg.horizon_days,
        method=cfg.method,
        history_days=history_days,
        positions=positions,
        var=var_,
        es=es,
        var_delta_normal=var_dn,
        es_delta_normal=es_dn,
        var_delta_gamma=var_dg,
        es_delta_gamma=es_dg,
        var_historical=var_h,
        es_historical=es_h,
        var_monte_carlo=var_mc,
        es_monte_carlo=es_mc,
        status=status,
        mc_scenarios=cfg.mc_scenarios,
        units=VAR_UNITS,
        scenario_set=scenario_set,
        shards=shards,
    )


VAR_UNITS: Final = {
    k: v for k, v in RISK_UNITS.items() if k in ("var", "es") or k.startswith(("var_", "es_"))
}


# ------------------------------------------------------------------------------- wire form


class BookHeader(msgspec.Struct, frozen=True, kw_only=True):
    """One book in a shard's :class:`VectorsHeader`."""

    positions: int
    underlyings: list[str]
    status: str


class VectorsHeader(msgspec.Struct, frozen=True, kw_only=True):
    """The ``header`` field of a shard's ``{base}:vectors`` hash (JSON; docs/redis.md).

    Attributes:
        v: the layout's version.
        ts_ns: when it was written. valuation_ts_ns: when the shard's book was valued.
        shard: the shard's name.
        scenario_set: :attr:`ScenarioSet.id`.
        underlyings: the set's underlyings, in order (the vectors' columns).
        owned: those of them this shard owns.
        history_days, mc_scenarios, mc_seed, horizon_days: of the set.
        status: the set's status (``"ok"``, or why there are no scenarios).
        books: each book's positions, underlyings and status on this shard.
        dtype: the vectors' type (numpy's notation: ``<f8``).
    """

    v: int = 1
    ts_ns: int
    valuation_ts_ns: int
    shard: str
    scenario_set: str
    underlyings: list[str]
    owned: list[str]
    history_days: int
    mc_scenarios: int
    mc_seed: int
    horizon_days: float
    status: str
    books: dict[str, BookHeader]
    dtype: str = DTYPE.str


_VECTORS: Final = ("historical", "monte_carlo", "delta_usd", "gamma_usd")


def encode_vectors(
    shard: str,
    owned: Sequence[str],
    sset: ScenarioSet,
    cfg: VarSettings,
    books: Sequence[BookVectors],
    now_ns: int,
    valuation_ns: int,
) -> dict[str, bytes]:
    """A shard's vectors as the fields of its ``{base}:vectors`` hash: ``header`` (JSON
    :class:`VectorsHeader`), ``cov`` (the set's covariance, 2U x 2U; absent without one) and
    per book ``{vector}:{book}`` for each of historical, monte_carlo, delta_usd, gamma_usd."""
    header = VectorsHeader(
        ts_ns=now_ns,
        valuation_ts_ns=valuation_ns,
        shard=shard,
        scenario_set=sset.id,
        underlyings=list(sset.underlyings),
        owned=[x for x in sset.underlyings if x in owned],
        history_days=sset.history_days,
        mc_scenarios=cfg.mc_scenarios,
        mc_seed=cfg.mc_seed,
        horizon_days=cfg.horizon_days,
        status=sset.status,
        books={
            b.book: BookHeader(positions=b.positions, underlyings=b.underlyings, status=b.status)
            for b in books
        },
    )
    out = {"header": msgspec.json.encode(header)}
    if sset.cov is not None:
        out["cov"] = np.ascontiguousarray(sset.cov, DTYPE).tobytes()
    for b in books:
        for name in _VECTORS:
            out[f"{name}:{b.book}"] = np.ascontiguousarray(getattr(b, name), DTYPE).tobytes()
    return out


@dataclass(frozen=True, slots=True)
class ShardVectors:
    """A shard's vectors as read back: its header, the set's covariance and its books."""

    header: VectorsHeader
    cov: FloatArray | None
    books: list[BookVectors]


def decode_vectors(fields: Mapping[bytes | str, bytes | str]) -> ShardVectors:
    """The inverse of :func:`encode_vectors`.

    Raises:
        ValueError: a field missing or of the wrong size, a header that does not parse.
    """
    try:
        header = msgspec.json.decode(fields[b"header"], type=VectorsHeader)
    except (KeyError, msgspec.DecodeError) as exc:
        raise ValueError(f"bad or missing vectors header: {exc}") from None
    u = len(header.underlyings)
    cov = None
    if b"cov" in fields:
        cov = _array(fields, b"cov", 4 * u * u).reshape(2 * u, 2 * u)
    books = []
    for name, b in header.books.items():
        ok = b.status == OK
        sizes = {
            "historical": header.history_days if ok else 0,
            "monte_carlo": header.mc_scenarios if ok else 0,
            "delta_usd": u,
            "gamma_usd": u,
        }
        arrays = {k: _array(fields, f"{k}:{name}".encode(), n) for k, n in sizes.items()}
        books.append(
            BookVectors(
                book=name,
                valuation_ns=header.valuation_ts_ns,
                underlyings=b.underlyings,
                positions=b.positions,
                status=b.status,
                **arrays,
            )
        )
    return ShardVectors(header=header, cov=cov, books=books)


def _array(fields: Mapping[bytes | str, bytes | str], name: bytes, size: int) -> FloatArray:
    data = fields.get(name)
    if not isinstance(data, bytes) or len(data) != size * DTYPE.itemsize:
        raise ValueError(f"vectors field {name.decode()!r}: missing or not {size} float64")
    return np.frombuffer(data, DTYPE).astype(np.float64)


# ------------------------------------------------------------------------------- aggregation


def shards_disagree(shards: Sequence[ShardVectors], cfg: VarSettings) -> str | None:
    """Why ``shards`` cannot be combined into the figures of ``cfg`` yet (None: they can):
    none at all, a scenario set other than ``cfg``'s (underlyings, draws, seed, horizon) or
    than each other's (another window of moves), or the set's underlyings not owned by exactly
    one of them (a shard missing, or two claiming one)."""
    if not shards:
        return "no shard has published vectors"
    want = (list(cfg.scenario_underlyings), cfg.mc_scenarios, cfg.mc_seed, cfg.horizon_days)
    for s in shards:
        h = s.header
        if (h.underlyings, h.mc_scenarios, h.mc_seed, h.horizon_days) != want:
            return f"shard {h.shard}: another [risk] scenario set (underlyings, draws, horizon)"
    ids = {s.header.scenario_set for s in shards}
    if len(ids) > 1:
        return f"the shards are on different scenario sets {sorted(ids)} (windows of moves)"
    owners: dict[str, list[str]] = {u: [] for u in cfg.scenario_underlyings}
    for s in shards:
        for u in s.header.owned:
            owners[u].append(s.header.shard)
    missing = [u for u, who in owners.items() if not who]
    if missing:
        return f"no shard owns {', '.join(missing)} yet"
    shared = [f"{u} ({', '.join(who)})" for u, who in owners.items() if len(who) > 1]
    if shared:
        return f"owned by more than one shard: {'; '.join(shared)}"
    return None


def aggregate_payloads(
    shards: Sequence[ShardVectors], cfg: VarSettings, now_ns: int
) -> list[tuple[str, VarPayload]]:
    """The ``var`` payload of each book held on any of ``shards``, and of the firm: their
    vectors summed (``shards`` agree: :func:`shards_disagree`), with each contributing shard's
    valuation time."""
    first = shards[0]
    facts = SetFacts(first.header.scenario_set, first.header.history_days, first.cov)
    parts: dict[str, list[tuple[str, BookVectors]]] = {}
    for s in shards:
        for b in s.books:
            parts.setdefault(b.book, []).append((s.header.shard, b))
    out = []
    books = []
    for name in sorted(parts):
        book = combine(name, [b for _, b in parts[name]])
        books.append(book)
        times = {shard: b.valuation_ns for shard, b in parts[name]}
        out.append((name, var_payload_of(book, facts, cfg, now_ns, times)))
    if books:
        times = {s.header.shard: s.header.valuation_ts_ns for s in shards}
        out.append((FIRM, var_payload_of(firm_vectors(books), facts, cfg, now_ns, times)))
    return out
