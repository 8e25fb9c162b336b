"""The ``riskd`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import version
from pathlib import Path

from engine.errors import ConfigError

__all__ = ["main"]

# config/ sits beside engine/ in the repository (an editable install runs from there).
DEFAULT_DEMO_BOOK = Path(__file__).resolve().parents[2] / "config" / "demo_book.toml"

EXIT_CONFIG = 2


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
    return parser


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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``riskd`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            return _demo(args.config, args.json)
    except ConfigError as exc:
        print(f"riskd: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    raise AssertionError(args.command)  # argparse only lets known commands through


if __name__ == "__main__":
    sys.exit(main())
