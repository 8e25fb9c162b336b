"""The ``riskd`` command line."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from importlib.metadata import version
from pathlib import Path

from engine.errors import ConfigError

__all__ = ["main"]

# config/ sits beside engine/ in the repository (an editable install runs from there).
CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
DEFAULT_DEMO_BOOK = CONFIG_DIR / "demo_book.toml"
DEFAULT_CONFIG = CONFIG_DIR / "demo.toml"
SCHEMA_FILE = CONFIG_DIR.parent / "docs" / "schema" / "riskd-payloads.json"
"""The checked-in JSON Schema of the payloads (``riskd schema``)."""
DASHBOARD_SCHEMA_FILE = SCHEMA_FILE.with_name("dashboard-messages.json")
"""The checked-in JSON Schema of the dashboard's messages (``riskd schema --dashboard``)."""

EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130
"""Ctrl-C before the daemon runs (128 + SIGINT, as a shell reports it)."""


def _shard_number(text: str) -> int:
    """``--shard-id``'s value: a shard's number, 0 or more."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"a shard's number, 0 or more: {text!r}")
    return int(text)


def _add_shard_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shard-id",
        type=_shard_number,
        default=None,
        metavar="N",
        help="run the config as shard N: it overrides [cluster] shard_id, and {shard_id} in "
        "any of the file's strings (an MQTT client_id, a journal's path) reads N; one file "
        "for every shard (docs/scaling.md)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="riskd",
        description="Streaming options risk engine: live market data in, live portfolio risk out.",
    )
    parser.add_argument("--version", action="version", version=f"riskd {version('riskd')}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="price a demo book and print its Greeks (desk units)",
        description=(
            "Price the positions of a demo book (TOML; see config/demo_book.toml) at its "
            "valuation time and print value, delta, cash gamma, vega, theta and rho per position "
            "and per book, with units. Exit status 2 on a bad file, naming the key."
        ),
    )
    demo.add_argument(
        "-c",
        "--config",
        type=Path,
        default=DEFAULT_DEMO_BOOK,
        help=f"demo book TOML (default: {DEFAULT_DEMO_BOOK})",
    )
    demo.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    run = sub.add_parser(
        "run",
        help="run the daemon: feeds in, live exposures and alerts out to Redis",
        description=(
            "Run the risk daemon on a config file (docs/config.md): connect the feeds, keep the "
            "book's exposures current and publish them and the alerts to Redis (and the alerts "
            "to the [[notify]] services, docs/alerts.md). SIGTERM/SIGINT "
            "stop it cleanly after a final snapshot. Exit status 2 on a bad config, 1 on a fatal "
            "error (e.g. Redis refusing the credentials), 130 on Ctrl-C before it runs (while "
            "the kernels compile on a first run, or the book loads)."
        ),
    )
    run.add_argument(
        "-c",
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help=f"TOML (default: {DEFAULT_CONFIG})",
    )
    _add_shard_id(run)
    run.add_argument(
        "--view",
        choices=("auto", "on", "off"),
        default=None,
        help="live terminal view of the exposures (default: the config's view.enabled; auto = "
        "on when stdout is a terminal). While it is on, JSON logs go to log.file.",
    )
    run.add_argument(
        "--duration", type=float, default=None, metavar="SECONDS", help="stop after SECONDS"
    )
    run.add_argument(
        "--exit-at-end",
        action="store_true",
        help="with replay feeds: once every file has been replayed, compute the risk once more, "
        "publish the final state and exit 0 (default: hold the final state until Ctrl-C)",
    )
    check = sub.add_parser(
        "check-config",
        help="validate a config file and its positions; print it with secrets redacted",
        description=(
            "Load and validate a config file and its positions file, and check that the "
            "password variables and the password and certificate files it names can be read, "
            "without connecting to anything; print the configuration as JSON with secrets "
            "redacted (names of variables and files, never their contents). Exit status 2 and "
            "the key's path on a bad config."
        ),
    )
    check.add_argument(
        "-c",
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help=f"TOML (default: {DEFAULT_CONFIG})",
    )
    _add_shard_id(check)
    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of every payload riskd publishes",
        description=(
            "Print the JSON Schema (2020-12) of every payload riskd writes to Redis, generated "
            "from the payload types of engine.outputs: $defs holds one entry per family "
            "(exposure, var, ..., alert, heartbeat). The repository keeps it in "
            f"{SCHEMA_FILE.relative_to(SCHEMA_FILE.parents[2])} (`riskd schema -o` that file "
            "after changing a payload; a test checks that they agree)."
        ),
    )
    schema.add_argument(
        "-o", "--output", type=Path, default=None, help="write it to this file, not to stdout"
    )
    schema.add_argument(
        "--dashboard",
        action="store_true",
        help="the schema of the dashboard's WebSocket messages instead (kept in "
        f"{DASHBOARD_SCHEMA_FILE.relative_to(DASHBOARD_SCHEMA_FILE.parents[2])})",
    )
    aggregate = sub.add_parser(
        "aggregate",
        help="combine the shards into exact book and firm VaR, ES, stress, margin, liquidity",
        description=(
            "Run the aggregator of a sharded deployment (docs/scaling.md#the-aggregator) on the "
            "shards' config file: every [risk] var_interval_s, read each shard's P&L vectors, "
            "exposures, stress grids, margin and liquidity on the common scenario set ([risk] "
            "scenario_underlyings) from Redis, and once every underlying of the set is owned by "
            "exactly one shard and all are on the same set, publish each book's and the firm's "
            "(key *) var payload, exposure totals and stress grid, and each book's margin and "
            "liquidity, under "
            "the keys of one daemon "
            "that is not sharded: the figures that daemon would publish, with the alert rules "
            "([[alerts]]) checked on them. It and the shards start and restart in any order. "
            "SIGTERM/SIGINT stop it. Exit status 2 "
            "on a bad config, 1 on a fatal Redis error."
        ),
    )
    aggregate.add_argument(
        "-c",
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help=f"TOML (default: {DEFAULT_CONFIG})",
    )
    aggregate.add_argument(
        "--duration", type=float, default=None, metavar="SECONDS", help="stop after SECONDS"
    )
    what_if = sub.add_parser(
        "what-if",
        help="incremental VaR, ES and margin of proposed trades, from the running daemon",
        description=(
            "Ask the running daemon (POST /what-if on the config's [http] address) what the "
            "trades would add to each book's and the firm's VaR and ES (every method) and "
            "portfolio margin, against its book and moves now; print its JSON answer "
            "(docs/risk.md#what-if). It sends the [http] access token when one is set, and "
            "speaks HTTPS when the daemon does (trusting its tls_cert_file). Nothing is traded "
            "or published. Exit status 2 on a bad "
            "config or trade, 1 when the daemon cannot be reached or refuses the request."
        ),
    )
    what_if.add_argument(
        "-c",
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help=f"TOML (default: {DEFAULT_CONFIG})",
    )
    _add_shard_id(what_if)
    what_if.add_argument(
        "--trade",
        action="append",
        required=True,
        metavar="BOOK:INSTRUMENT:QTY",
        help="a proposed trade (QTY as the positions file counts it; negative: sell); repeat it",
    )
    return parser


def _what_if(path: Path, shard_id: int | None, trades: list[str]) -> int:
    from engine.runtime.access import Access
    from engine.runtime.config import load_config
    from engine.runtime.whatif import client_tls, parse_trade, post_what_if

    config = load_config(path, shard_id)
    if not config.http.address:
        raise ConfigError(str(path), "what-if needs the daemon's HTTP server - at `$.http.address`")
    try:
        parsed = [parse_trade(t) for t in trades]
    except ValueError as exc:
        print(f"riskd: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    token = Access.read(config.http.token_env, config.http.token_file).token
    try:
        status, answer = post_what_if(config.http.address, parsed, token, client_tls(config.http))
    except OSError as exc:
        print(f"riskd: no daemon at {config.http.address}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2))
    return 0 if status == 200 else 1


def _aggregate(path: Path, duration_s: float | None) -> int:
    import asyncio

    from engine.runtime import aggregator
    from engine.runtime.config import load_config
    from engine.runtime.logs import configure_logging

    config = load_config(path)
    configure_logging(config.log.level)
    agg = aggregator.build(config, path)
    return asyncio.run(aggregator.run(agg, duration_s=duration_s))


def _schema(output: Path | None, dashboard: bool) -> int:
    from engine.outputs import dashboard_schema, payload_schema

    schema = dashboard_schema() if dashboard else payload_schema()
    text = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
    return 0


def _demo(config: Path, as_json: bool) -> int:
    # Imported here so that `riskd --help` does not load numba.
    from engine.runtime.demo import COLUMNS, format_book, load_book, price_book

    book = load_book(config)
    priced = price_book(book)
    if as_json:
        units = dict(COLUMNS)
        for i, p in enumerate(priced.positions):
            row: dict[str, object] = {"book": p.book, "instrument": p.instrument}
            row["quantity"] = p.quantity
            row["status"] = int(priced.status[i])
            for name, values in priced.columns.items():
                v = float(values[i])
                row[name] = None if v != v else v
            row["units"] = units
            print(json.dumps(row))
    else:
        print(format_book(priced, book.valuation))
    return 0


def _check_config(path: Path, shard_id: int | None) -> int:
    from engine.runtime.app import build
    from engine.runtime.config import load_config, redacted

    config = load_config(path, shard_id)
    daemon = build(config, path, write=False)  # a daemon may be running on these files
    report = {
        "config": redacted(config),
        "positions": daemon.portfolio.instrument_status().lots,
        "instruments": len(daemon.portfolio.instruments()),
    }
    print(json.dumps(report, indent=2, default=str))
    return 0


def _kernels_compiled() -> bool:
    """Whether numba's cache holds compiled kernels (found without importing numba): in
    ``engine/__pycache__`` beside the source, or under ``NUMBA_CACHE_DIR``."""
    spec = importlib.util.find_spec("engine.kernels")
    if spec is None or spec.origin is None:
        return False
    cache_dir = os.environ.get("NUMBA_CACHE_DIR")
    folder = Path(cache_dir) if cache_dir else Path(spec.origin).parent / "__pycache__"
    return folder.is_dir() and any(folder.rglob("kernels.*.nbi"))


def _run(
    path: Path,
    shard_id: int | None,
    view_flag: str | None,
    duration_s: float | None,
    exit_at_end: bool,
) -> int:
    # numba's OpenMP threads sleep as soon as a parallel region ends instead of spinning for
    # the next one (docs/kernels.md#threads). Set before numba loads OpenMP.
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    if not _kernels_compiled():  # they compile as the engine is imported, below
        print(  # a person waits at a blank terminal otherwise
            "riskd: first run: compiling the numba kernels (about a minute on two cores; "
            "cached for later runs)...",
            file=sys.stderr,
            flush=True,
        )
    import asyncio

    from engine.runtime.app import build, run
    from engine.runtime.config import ReplayConfig, load_config
    from engine.runtime.localredis import local_redis
    from engine.runtime.logs import configure_logging

    config = load_config(path, shard_id)
    mode = view_flag or config.view.enabled
    view_on = mode == "on" or (mode == "auto" and sys.stdout.isatty())
    log_file = None
    if view_on:
        log_file = (path.parent / config.log.file).open("a", encoding="utf-8")
    try:
        configure_logging(config.log.level, log_file)
        daemon = build(config, path)
        if exit_at_end and not any(isinstance(f, ReplayConfig) for f in config.feeds):
            raise ConfigError(str(path), "--exit-at-end needs a replay feed - at `$.feeds`")
        daemon.intake.exit_at_end = exit_at_end
        with local_redis(config.redis) as private:
            forced = private.kill if private is not None else None
            return asyncio.run(
                run(daemon, duration_s=duration_s, view=view_on, on_forced_exit=forced)
            )
    finally:
        if log_file is not None:
            log_file.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``riskd`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            return _demo(args.config, args.json)
        if args.command == "check-config":
            return _check_config(args.config, args.shard_id)
        if args.command == "run":
            return _run(args.config, args.shard_id, args.view, args.duration, args.exit_at_end)
        if args.command == "schema":
            return _schema(args.output, args.dashboard)
        if args.command == "aggregate":
            return _aggregate(args.config, args.duration)
        if args.command == "what-if":
            return _what_if(args.config, args.shard_id, args.trade)
    except ConfigError as exc:
        print(f"riskd: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:  # Ctrl-C before the daemon's loop handles it (compiling, loading)
        print("riskd: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    raise AssertionError(args.command)  # argparse only lets known commands through


if __name__ == "__main__":
    sys.exit(main())
