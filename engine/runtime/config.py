"""The daemon's configuration: one TOML file, validated into frozen msgspec structs.

Every key, its unit and its default are documented in docs/config.md. Loading fails fast with
:class:`engine.errors.ConfigError` naming the key's path (``$.feeds[0].url``) or the positions
file's line; ``riskd check-config`` prints the validated configuration with secrets redacted.
"""

from __future__ import annotations

import math
import ssl
import tomllib
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec

from engine.alerts import AlertRule
from engine.constraints import NonNegativeFloat, PositiveFloat, PositiveInt, Share
from engine.credentials import read_secret
from engine.curves import RateCurveConfig, ZeroCurve
from engine.errors import ConfigError
from engine.instruments import (
    Delivery,
    Exercise,
    Instrument,
    InstrumentRegistry,
    Kind,
    Settlement,
    SettleTiming,
)
from engine.listed import settlement_ns
from engine.risk.report import RiskConfig
from engine.runtime.http import HttpConfig
from engine.runtime.notify import NotifyConfig, check_targets, privacy_url
from engine.runtime.positions import Position, load_book, load_positions
from engine.runtime.redis_sink import RedisConfig, redact_url
from engine.shards import ClusterConfig, check_cluster
from engine.state import Portfolio, UnderlyingParams
from engine.uscalendar import open_ns
from feeds.dbn import DbnFeedConfig
from feeds.deribit import DeribitFeedConfig
from feeds.mqtt import MqttFeedConfig
from feeds.replay import ReplayFeedConfig
from feeds.sim import SimFeedConfig
from feeds.ussim import UsSimFeedConfig

__all__ = [
    "AppConfig",
    "CheckpointConfig",
    "EngineConfig",
    "FeedConfig",
    "InstrumentConfig",
    "LogConfig",
    "PortfolioConfig",
    "Position",
    "ReplayConfig",
    "declared_underlyings",
    "load_book",
    "load_config",
    "load_positions",
    "new_portfolio",
    "rate_curves",
    "redacted",
    "underlying_curves",
]

FeedConfig = (
    DeribitFeedConfig
    | MqttFeedConfig
    | ReplayFeedConfig
    | DbnFeedConfig
    | SimFeedConfig
    | UsSimFeedConfig
)
"""One ``[[feeds]]`` table, chosen by its ``kind``."""
ReplayConfig = ReplayFeedConfig | DbnFeedConfig
"""A feed that replays recorded files on the replay's own clock (``--exit-at-end`` ends the
daemon when all of them have finished)."""

_Credentials = TypeVar("_Credentials", RedisConfig, MqttFeedConfig)
_CREDENTIAL_FILES = ("password_file", "tls_ca_file", "tls_cert_file", "tls_key_file")


class DividendConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One discrete cash dividend of an underlying (an entry of its ``dividends``)."""

    ex_date: date
    """The first day the underlying trades without it: it leaves the spot at that day's
    09:30 ET open (:func:`engine.uscalendar.open_ns`)."""
    amount: NonNegativeFloat
    """Quote currency per unit of the underlying (per share)."""

    def __post_init__(self) -> None:
        if not math.isfinite(self.amount):
            raise ValueError("amount must be finite")

    @property
    def ex_ns(self) -> int:
        """When it leaves the spot, int UNIX ns."""
        return open_ns(self.ex_date)


class UnderlyingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Rate and dividend yield of an underlying (decimals, continuously compounded), and its
    discrete cash dividends.

    ``rate`` is a flat curve (:meth:`engine.curves.ZeroCurve.flat`); ``curve`` names a
    ``[rates.CCY]`` curve instead (then ``rate`` stays unset).
    """

    rate: float = 0.0
    dividend_yield: float = 0.0
    curve: str = ""
    carry: Literal["config", "implied"] = "config"
    """``implied``: its options on spot take each expiry's dividend yield from the forward
    their chain implies by put-call parity (``[risk.forwards]``), ``dividend_yield`` until
    one is known."""
    dividends: list[DividendConfig] = []
    """Its options on spot are priced on the spot less the PV of those paid before their
    expiry (escrowed model, docs/american.md); sorted by ``ex_date``, one a day."""

    def zero_curve(self, curves: dict[str, ZeroCurve]) -> ZeroCurve:
        """The curve that discounts this underlying's options: ``curves[curve]``, else flat at
        ``rate``. Raises KeyError: ``curve`` names none of ``curves``."""
        return curves[self.curve] if self.curve else ZeroCurve.flat(self.rate)


class PortfolioConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[portfolio]``: where the start-of-day positions are and how to value them.

    Attributes:
        positions: CSV file ``book,instrument,quantity[,avg_price]`` (relative paths are relative
            to the config file); empty: start flat and build the book from fills.
        stale_after_s: an instrument whose input is older than this is counted stale.
        underlyings: rate and yield per underlying (e.g. ``[portfolio.underlyings.SPX]``).
        journal: file every accepted fill is written to (fsynced) before it is acknowledged;
            at start its fills are applied again, so a restart rebuilds the book it had
            (relative to the config file); empty: no journal.
        american_accuracy: the scheme American options (SPY, quarterly E-mini options) are
            priced with: ``"fast"`` (1e-5 relative) or ``"accurate"`` (1e-8, several times the
            cost); docs/american.md.
    """

    positions: str = ""
    stale_after_s: PositiveFloat = 60.0
    underlyings: dict[str, UnderlyingConfig] = {}
    journal: str = ""
    american_accuracy: Literal["fast", "accurate"] = "fast"


class CheckpointConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[checkpoint]``: a periodic checkpoint of the book (docs/operations.md "Checkpoints").

    Attributes:
        path: the checkpoint file (relative to the config file); empty: no checkpoints. Needs
            ``[portfolio] journal``: a restart loads the checkpoint and replays the journal's
            entries after the offset it records.
        interval_s: time between two checkpoints.
    """

    path: str = ""
    interval_s: PositiveFloat = 60.0


class EngineConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[engine]``: cycle timing and bounds.

    Attributes:
        cycle_interval_ms: longest the engine waits for new events before cycling anyway.
        min_cycle_interval_ms: while events keep coming, the shortest time from a cycle that
            took events to the next: what arrives meanwhile is repriced together (throughput
            under load, at most this much added latency then). An event after a quiet spell is
            taken at once. 0: a cycle at every wake.
        busy_share: while events keep coming, the share of the event loop's time that the
            engine's cycles may take at most: after a cycle of d ms the next one waits
            d x (1 / busy_share - 1) ms (and ``min_cycle_interval_ms`` from its start), so a
            heavy load is taken in larger batches and the feeds keep reading.
        full_reprice_interval_s: every this often, reprice everything (time decay) and rebuild
            every sum from scratch.
        fill_queue: fills the inbox holds before feeds that deliver fills are made to wait.
        feed_stale_after_s: a feed silent for this long raises the stale-feed alert.
        stats_interval_s: period of the statistics log line.
    """

    cycle_interval_ms: PositiveInt = 50
    min_cycle_interval_ms: NonNegativeFloat = 2.0
    busy_share: Share = 0.25
    full_reprice_interval_s: PositiveFloat = 1.0
    fill_queue: PositiveInt = 100_000
    feed_stale_after_s: PositiveFloat = 10.0
    stats_interval_s: PositiveFloat = 10.0


class LogConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[log]``: level, and the file logs go to while the terminal view is on."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    file: str = "riskd.log"


class InstrumentConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[[instruments]]``: an instrument that is not a Deribit name (e.g. an index option).

    Options need ``expiry`` (or ``expiry_date`` with ``settle_timing``), ``strike`` and
    ``is_call``. ``venue`` is required: ``deribit`` prices options with Black-76 on the forward,
    as does ``underlying_future`` (an option on that future), any other venue with BSM on the
    index named by ``index`` (fed by ticks of that name). ``expiry_date`` is a US expiry day:
    the instant is the settlement on it, 09:30 ET (``am``) or the close (``pm``: 16:00 ET, or
    an early close), by :mod:`engine.uscalendar`.
    """

    name: str
    kind: Kind
    underlying: str
    index: str
    quote_currency: str = "USD"
    settlement: Settlement = Settlement.LINEAR
    expiry: datetime | None = None
    strike: PositiveFloat | None = None
    is_call: bool | None = None
    multiplier: PositiveFloat = 1.0
    venue: str
    exercise: Exercise = Exercise.EUROPEAN
    delivery: Delivery = Delivery.CASH
    settle_timing: SettleTiming | None = None
    expiry_date: date | None = None
    underlying_future: str | None = None

    def to_instrument(self) -> Instrument:
        """The registry entry. Raises ValueError when a field the kind needs is missing, or
        fields contradict each other (the message names the key)."""
        expiry_ns = None
        if self.expiry is not None:
            if self.expiry_date is not None:
                raise ValueError("expiry_date: give expiry or expiry_date, not both")
            if self.expiry.tzinfo is None:
                raise ValueError("expiry needs a UTC offset (e.g. 2025-03-21T20:00:00Z)")
            expiry_ns = int(self.expiry.timestamp()) * 1_000_000_000
        elif self.expiry_date is not None:
            if self.settle_timing is None:
                raise ValueError("expiry_date needs settle_timing (am or pm)")
            expiry_ns = settlement_ns(self.expiry_date, self.settle_timing)
        return Instrument(
            name=self.name,
            kind=self.kind,
            underlying=self.underlying,
            quote_currency=self.quote_currency,
            settlement=self.settlement,
            index=self.index,
            expiry_ns=expiry_ns,
            strike=self.strike,
            is_call=self.is_call,
            multiplier=self.multiplier,
            venue=self.venue,
            exercise=self.exercise,
            delivery=self.delivery,
            settle_timing=self.settle_timing,
            underlying_future=self.underlying_future,
        )


class ViewConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[view]``: the live terminal view of the book's exposures."""

    enabled: Literal["auto", "on", "off"] = "auto"
    refresh_s: PositiveFloat = 0.5


class AppConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole file: ``[redis]``, ``[cluster]``, ``[[feeds]]``, ``[portfolio]``,
    ``[checkpoint]``, ``[rates]``, ``[engine]``, ``[risk]``, ``[http]``, ``[log]``, ``[view]``,
    ``[[instruments]]``, ``[[alerts]]``, ``[[notify]]``."""

    redis: RedisConfig = RedisConfig()
    cluster: ClusterConfig = ClusterConfig()
    feeds: list[FeedConfig] = []
    portfolio: PortfolioConfig = PortfolioConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    rates: dict[str, RateCurveConfig] = {}
    engine: EngineConfig = EngineConfig()
    risk: RiskConfig = RiskConfig()
    http: HttpConfig = HttpConfig()
    log: LogConfig = LogConfig()
    view: ViewConfig = ViewConfig()
    instruments: list[InstrumentConfig] = []
    alerts: list[AlertRule] = []
    notify: list[NotifyConfig] = []


SHARD_PLACEHOLDER = "{shard_id}"
"""Written in any string of a config file, the shard's number (``[cluster] shard_id``, or
``--shard-id``): one file for every shard (docs/scaling.md)."""


def _placed(value: Any, shard_id: int, where: str, source: str) -> Any:
    """``value`` (TOML at key path ``where``) with :data:`SHARD_PLACEHOLDER` replaced by
    ``shard_id`` in every string; ``shard_id`` < 0: there is none, and a placeholder is an
    error naming its key."""
    if isinstance(value, str) and SHARD_PLACEHOLDER in value:
        if shard_id < 0:
            detail = f"{SHARD_PLACEHOLDER} needs [cluster] shard_id or --shard-id - at `{where}`"
            raise ConfigError(source, detail)
        return value.replace(SHARD_PLACEHOLDER, str(shard_id))
    if isinstance(value, dict):
        return {k: _placed(v, shard_id, f"{where}.{k}", source) for k, v in value.items()}
    if isinstance(value, list):
        return [_placed(v, shard_id, f"{where}[{i}]", source) for i, v in enumerate(value)]
    return value


def _as_shard(data: dict[str, Any], shard_id: int | None, source: str) -> dict[str, Any]:
    """The file's ``data`` as shard ``shard_id`` (None: the file's own ``[cluster]
    shard_id``, if any): that id in ``[cluster]`` and in place of every
    :data:`SHARD_PLACEHOLDER`. An id that is not a number is left to the validation."""
    cluster = data.get("cluster", {})
    if shard_id is not None:
        if not isinstance(cluster, dict):
            raise ConfigError(source, "--shard-id needs [cluster] to be a table - at `$.cluster`")
        data = {**data, "cluster": {**cluster, "shard_id": shard_id}}
        cluster = data["cluster"]
    own = cluster.get("shard_id") if isinstance(cluster, dict) else None
    if own is not None and (isinstance(own, bool) or not isinstance(own, int) or own < 0):
        return data
    placed: dict[str, Any] = _placed(data, -1 if own is None else own, "$", source)
    return placed


def load_config(path: Path, shard_id: int | None = None) -> AppConfig:
    """Read and validate a config file, as shard ``shard_id`` where given (``--shard-id``:
    it overrides ``[cluster] shard_id``; :data:`SHARD_PLACEHOLDER` in any string is the
    shard's id).

    Raises:
        ConfigError: unreadable file, bad TOML, or a bad key or value (named by its path).
    """
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(source, f"cannot read: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(source, f"not valid TOML: {exc}") from exc
    except RecursionError:  # tomllib recurses per nested array or table (found by fuzzing)
        raise ConfigError(source, "not valid TOML: nested too deeply") from None
    try:
        data = _as_shard(data, shard_id, source)
    except RecursionError:  # as deep as tomllib could go
        raise ConfigError(source, "not valid TOML: nested too deeply") from None
    _check_tables(data.get("rates"), "$.rates", RateCurveConfig, source)
    portfolio = data.get("portfolio")
    underlyings = portfolio.get("underlyings") if isinstance(portfolio, dict) else None
    _check_tables(underlyings, "$.portfolio.underlyings", UnderlyingConfig, source)
    try:
        config = msgspec.convert(data, AppConfig)
    except msgspec.ValidationError as exc:  # its message ends "- at `$.feeds[0].url`"
        raise ConfigError(source, str(exc)) from exc
    wrong = check_cluster(config.cluster)
    if wrong is not None:
        raise ConfigError(source, f"{wrong[1]} - at `$.cluster.{wrong[0]}`")
    for name, underlying in config.portfolio.underlyings.items():
        where = f"$.portfolio.underlyings.{name}"
        if underlying.curve and underlying.curve not in config.rates:
            detail = f"no [rates.{underlying.curve}] curve - at `{where}.curve`"
            raise ConfigError(source, detail)
        if underlying.curve and underlying.rate != 0.0:
            raise ConfigError(source, f"give `rate` or `curve`, not both - at `{where}`")
        dates = [d.ex_date for d in underlying.dividends]
        for k in range(1, len(dates)):
            if dates[k] <= dates[k - 1]:
                detail = f"must be after the previous one ({dates[k - 1]}): sorted, one a day"
                raise ConfigError(source, f"{detail} - at `{where}.dividends[{k}].ex_date`")
        if underlying.dividends and underlying.carry == "implied":
            detail = "the chain's implied carry holds the dividends already: give one of them"
            raise ConfigError(source, f"{detail} - at `{where}.dividends`")
        if underlying.carry == "implied" and not (
            config.risk.enabled and config.risk.forwards.enabled
        ):
            detail = "needs [risk.forwards] enabled = true (and [risk] enabled)"
            raise ConfigError(source, f"{detail} - at `{where}.carry`")
    _check_checkpoint(config, path)
    for i, inst in enumerate(config.instruments):
        try:
            inst.to_instrument()
        except ValueError as exc:
            raise ConfigError(source, f"{exc} - at `$.instruments[{i}]`") from exc
    names = [f.name for f in config.feeds]
    for i, name in enumerate(names):
        if names.index(name) != i:
            raise ConfigError(source, f"duplicate feed name {name!r} - at `$.feeds[{i}].name`")
    feeds = [
        _credentials(f, f"$.feeds[{i}]", path) if isinstance(f, MqttFeedConfig) else f
        for i, f in enumerate(config.feeds)
    ]
    return msgspec.structs.replace(
        config,
        redis=_credentials(config.redis, "$.redis", path),
        feeds=feeds,
        notify=check_targets(config.notify, path),
        http=_http_credentials(config.http, path),
    )


def _check_checkpoint(config: AppConfig, path: Path) -> None:
    """``[checkpoint] path``: needs a journal, names neither the journal nor the positions
    file, and lies in a folder that exists.

    Raises:
        ConfigError: naming ``$.checkpoint.path``.
    """
    target = config_relative(config.checkpoint.path, path)
    if target is None:
        return
    where = " - at `$.checkpoint.path`"
    if not config.portfolio.journal:
        detail = "a checkpoint needs [portfolio] journal (it replays the journal's tail)"
        raise ConfigError(str(path), detail + where)
    for key in ("journal", "positions"):
        other = config_relative(getattr(config.portfolio, key), path)
        if other is not None and other.resolve() == target.resolve():
            raise ConfigError(str(path), f"is also [portfolio] {key}{where}")
    if not target.parent.is_dir():
        raise ConfigError(str(path), f"no folder {target.parent}{where}")


def _check_tables(tables: Any, at: str, struct: type[Any], source: str) -> None:
    """Validate each table of ``tables`` (the tables keyed by name at ``at``: ``[rates.CCY]``,
    ``[portfolio.underlyings.X]``) as a ``struct`` on its own, so an error names its key
    (msgspec writes a table's keys as ``[...]`` in its paths).

    Raises:
        ConfigError: a bad table, named by its key (``$.rates.USD.zero_rates[2]``).
    """
    if not isinstance(tables, dict):
        return  # absent, or not a table: AppConfig's conversion says so
    for name, table in tables.items():
        try:
            msgspec.convert(table, struct)
        except msgspec.ValidationError as exc:
            detail, found, path = str(exc).partition(" - at `$")
            where = f"{at}.{name}{path[:-1] if found else ''}"
            raise ConfigError(source, f"{detail} - at `{where}`") from exc


def rate_curves(config: AppConfig) -> dict[str, ZeroCurve]:
    """The ``[rates]`` curves, by currency."""
    return {name: curve.curve() for name, curve in config.rates.items()}


def _http_credentials(config: HttpConfig, config_path: Path) -> HttpConfig:
    """``[http]`` with its token and certificate files resolved against the config file's
    folder, once it is known that the token can be read and the certificate, key and CAs load.

    Raises:
        ConfigError: an unset variable, a file that cannot be read, a bad certificate or key;
            named by its key (``$.http.tls_cert_file``).
    """
    source = str(config_path)
    files = _readable_files(config, ("token_file", *_CREDENTIAL_FILES[1:]), "$.http", config_path)
    config = msgspec.structs.replace(config, **files)
    try:
        read_secret(config.token_env, config.token_file)
    except ValueError as exc:
        key = "token_env" if config.token_env is not None else "token_file"
        raise ConfigError(source, f"{exc} - at `$.http.{key}`") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        if config.tls_cert_file is not None:
            key = "tls_cert_file"
            context.load_cert_chain(config.tls_cert_file, config.tls_key_file, password=b"")
        if config.tls_ca_file is not None:
            key = "tls_ca_file"
            context.load_verify_locations(cafile=config.tls_ca_file)
    except ssl.SSLError as exc:
        detail = f"not a usable PEM certificate or key: {exc.reason or exc}"
        raise ConfigError(source, f"{detail} - at `$.http.{key}`") from None
    return config


def _readable_files(
    config: Any, keys: Iterable[str], where: str, config_path: Path
) -> dict[str, str]:
    """The file keys of ``config`` among ``keys`` that are set, resolved against the config
    file's folder, once each is known to be readable.

    Raises:
        ConfigError: a file that cannot be read, named by its key (``{where}.{key}``).
    """
    files: dict[str, str] = {}
    for key in keys:
        resolved = config_relative(getattr(config, key) or "", config_path)
        if resolved is None:
            continue
        try:
            with resolved.open("rb"):
                pass
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
            detail = f"cannot read {resolved}: {getattr(exc, 'strerror', None) or exc}"
            raise ConfigError(str(config_path), f"{detail} - at `{where}.{key}`") from None
        files[key] = str(resolved)
    return files


def _credentials(config: _Credentials, where: str, config_path: Path) -> _Credentials:
    """``config`` with its password and certificate files resolved against the config file's
    folder, once it is known that its password and those files can be read and the
    certificates and key loaded (the secret itself is read again where it is used).

    Raises:
        ConfigError: an unset variable, a file that cannot be read, a bad certificate or
            key; named by its key (``$.redis.password_env``).
    """
    source = str(config_path)
    files = _readable_files(config, _CREDENTIAL_FILES, where, config_path)
    config = msgspec.structs.replace(config, **files)
    try:
        read_secret(config.password_env, config.password_file)
    except ValueError as exc:
        key = "password_env" if config.password_env is not None else "password_file"
        raise ConfigError(source, f"{exc} - at `{where}.{key}`") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        if config.tls_ca_file is not None:
            key = "tls_ca_file"
            context.load_verify_locations(cafile=config.tls_ca_file)
        if config.tls_cert_file is not None:
            key = "tls_cert_file"
            # An encrypted key would prompt on the terminal: refuse it instead.
            context.load_cert_chain(config.tls_cert_file, config.tls_key_file, password=b"")
    except ssl.SSLError as exc:
        detail = f"not a usable PEM certificate or key: {exc.reason or exc}"
        raise ConfigError(source, f"{detail} - at `{where}.{key}`") from None
    return config


def config_relative(name: str, config_path: Path) -> Path | None:
    """A file named in the config (``portfolio.positions``, ``risk.history``), resolved against
    the config file's folder; None when unset (empty)."""
    if not name:
        return None
    p = Path(name)
    return p if p.is_absolute() else (config_path.parent / p)


def redacted(config: AppConfig) -> dict[str, Any]:
    """The configuration as plain data, secrets replaced by ``***``."""
    data: dict[str, Any] = msgspec.to_builtins(config)
    data["redis"]["url"] = redact_url(config.redis.url)
    for target, n in zip(data["notify"], config.notify, strict=True):
        if n.url is not None:
            target["url"] = privacy_url(n.url)
    return data


def underlying_curves(config: AppConfig) -> dict[str, ZeroCurve]:
    """Each ``[portfolio.underlyings]`` entry's rate curve (its ``[rates]`` curve, or flat at
    its ``rate``)."""
    curves = rate_curves(config)
    return {n: u.zero_curve(curves) for n, u in config.portfolio.underlyings.items()}


def new_portfolio(config: AppConfig) -> Portfolio:
    """An empty portfolio on a registry of the configured instruments (``[[instruments]]``),
    with the underlyings' rates (flat, or their ``[rates]`` curve) and yields and the
    staleness limit of ``[portfolio]``."""
    registry = InstrumentRegistry(i.to_instrument() for i in config.instruments)
    curves = rate_curves(config)
    params = {
        n: UnderlyingParams(
            u.rate,
            u.dividend_yield,
            curves[u.curve] if u.curve else None,
            u.carry == "implied",
            tuple((d.ex_ns, d.amount) for d in u.dividends),
        )
        for n, u in config.portfolio.underlyings.items()
    }
    return Portfolio(
        registry,
        params,
        round(config.portfolio.stale_after_s * 1e9),
        config.portfolio.american_accuracy,
    )


def declared_underlyings(config: AppConfig, registry: InstrumentRegistry) -> frozenset[str]:
    """The underlyings the configuration names: ``[portfolio.underlyings]``, the registry's
    instruments (``[[instruments]]``), and the feeds' (a Deribit feed's instruments, indices
    and currencies, a simulator's underlyings)."""
    known = set(config.portfolio.underlyings)
    known.update(i.underlying for i in registry)
    names: list[str] = []
    for feed in config.feeds:
        if isinstance(feed, DeribitFeedConfig):
            known.update(feed.instrument_currencies, feed.summary_currencies)
            names += [*feed.instruments, *feed.indices]
        elif isinstance(feed, SimFeedConfig):
            known.update(u.name for u in feed.underlyings)
        elif isinstance(feed, UsSimFeedConfig):
            names += ["SPX", "SPY"]
    known.update(i.underlying for n in names if (i := registry.get(n)) is not None)
    return frozenset(known)
