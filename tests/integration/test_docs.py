"""The operator's documents say what the code does: every configuration key is in the
reference, the systemd unit is one systemd accepts, and the documents' links lead somewhere."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from engine.runtime.config import AppConfig

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"


def _keys(t: msgspec.inspect.Type, path: str, seen: set[type]) -> Iterator[tuple[str, str]]:
    """(path, key) of every key of the configuration schema, through lists, tables and unions."""
    if isinstance(t, msgspec.inspect.StructType):
        if t.cls in seen:
            return
        seen.add(t.cls)
        for f in t.fields:
            yield path, f.encode_name
            yield from _keys(f.type, f"{path}.{f.encode_name}", seen)
    elif isinstance(t, msgspec.inspect.ListType | msgspec.inspect.VarTupleType):
        yield from _keys(t.item_type, f"{path}[]", seen)
    elif isinstance(t, msgspec.inspect.DictType):
        yield from _keys(t.value_type, f"{path}.*", seen)
    elif isinstance(t, msgspec.inspect.UnionType):
        for member in t.types:
            yield from _keys(member, path, seen)
    elif isinstance(t, msgspec.inspect.Metadata):
        yield from _keys(t.type, path, seen)


def test_every_configuration_key_is_in_the_reference() -> None:
    text = (DOCS / "config.md").read_text()
    rows = set(re.findall(r"^\| `([a-z_0-9]+)`", text, flags=re.MULTILINE))
    tables = set(re.findall(r"^## `\[\[?([a-z_]+)\]\]?`", text, flags=re.MULTILINE))
    keys = list(_keys(msgspec.inspect.type_info(AppConfig), "$", set()))
    assert len(keys) > 100  # the walk reached every table
    missing = sorted(
        f"{path}.{key}" for path, key in keys if key not in (tables if path == "$" else rows)
    )
    assert missing == [], f"keys without a row in docs/config.md: {missing}"


# (unit, the command after "riskd run" and "riskd check-config", the state directory): riskd@NAME
# runs NAME.toml; riskd-shard@N runs shard.toml as shard N
UNITS = [
    ("riskd@.service", "-c /etc/riskd/%i.toml", "riskd/%i"),
    ("riskd-shard@.service", "-c /etc/riskd/shard.toml --shard-id %i", "riskd/shard%i"),
]


@pytest.mark.parametrize(("name", "args", "state"), UNITS, ids=[u[0] for u in UNITS])
def test_the_systemd_unit_runs_the_documented_command(
    tmp_path: Path, name: str, args: str, state: str
) -> None:
    unit = (DOCS / name).read_text()
    parsed = configparser.ConfigParser(strict=False, interpolation=None)
    parsed.optionxform = str  # type: ignore[assignment, method-assign]  # keys keep their case
    parsed.read_string(unit)
    service = parsed["Service"]
    assert service["ExecStart"].endswith(f"riskd run {args} --view off")
    assert service["ExecStartPre"].endswith(f"riskd check-config {args}")
    assert service["StateDirectory"] == state  # each instance its own journal
    assert service["KillSignal"] == "SIGTERM"
    assert service["RestartPreventExitStatus"] == "2"  # riskd's configuration-error status
    assert parsed["Install"]["WantedBy"] == "multi-user.target"
    analyze = shutil.which("systemd-analyze")
    if analyze is not None:  # systemd's own check, where systemd is installed
        riskd = Path(sys.executable).with_name("riskd")
        local = tmp_path / name.replace("@", "@0")  # an instance of the template
        local.write_text(unit.replace("/opt/riskd/.venv/bin/riskd", str(riskd)))
        done = subprocess.run(  # noqa: S603 - a fixed argv
            [analyze, "verify", str(local)], capture_output=True, text=True, check=False
        )
        said = done.stdout + done.stderr
        assert done.returncode == 0, said
        assert name.split("@")[0] + "@" not in said, (
            said
        )  # warnings too (an unknown value is ignored)


def test_links_between_the_documents_lead_somewhere() -> None:
    for doc in [*DOCS.glob("*.md"), ROOT / "README.md"]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


def test_the_log_lines_the_documents_name_are_written() -> None:
    """A log line an operator is told to look for is one the code writes: its message (or the
    start of it) stands as a string literal in engine/ or feeds/; every feed that reconnects
    writes ``feed reconnecting``."""
    sources = {p: p.read_text() for d in ("engine", "feeds") for p in (ROOT / d).rglob("*.py")}
    named = {
        m
        for doc in DOCS.glob("*.md")
        for m in re.findall(r"`([a-z][a-z ,]*)` log lines?", doc.read_text())
    } - {"error"}  # a level, not a message
    assert len(named) >= 6
    missing = sorted(n for n in named if not any(f'"{n}' in text for text in sources.values()))
    assert missing == [], f"log lines named in docs/ that nothing writes: {missing}"
    for feed in ("deribit.py", "mqtt.py"):
        assert '"feed reconnecting"' in sources[ROOT / "feeds" / feed], feed
