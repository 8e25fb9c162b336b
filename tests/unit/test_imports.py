"""The import contracts of pyproject.toml cover a module nobody listed: a new module of the core
that does I/O, imports the runtime or the risk measures breaks them; the same under
engine/runtime/ does not. Runs ``lint-imports`` on a copy of the packages with the module added.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_CACHES = shutil.ignore_patterns("__pycache__")


def lint_imports(tmp_path: Path, module: str, source: str) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` over copies of ``engine`` and ``feeds`` with ``module`` added."""
    for package in ("engine", "feeds"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=_CACHES)
    path = tmp_path.joinpath(*module.split(".")).with_suffix(".py")
    path.parent.mkdir(exist_ok=True)
    (path.parent / "__init__.py").touch()
    path.write_text(source, encoding="utf-8")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    lint = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}  # the copies, not the installed packages
    return subprocess.run(  # noqa: S603 - our own venv's lint-imports, fixed arguments
        [str(lint), "--no-cache", "--no-logo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("module", "source", "broken"),
    [
        ("engine.newmod", "import asyncio\n", "engine is not allowed to import asyncio"),
        ("engine.sub.deep", "import time\n", "engine is not allowed to import time"),
        ("engine.newmod", "import redis\n", "engine is not allowed to import redis"),
        ("engine.newmod", "from feeds import sim\n", "engine is not allowed to import feeds"),
        (
            "engine.newmod",
            "from engine.runtime import clock\n",
            "engine.newmod is not allowed to import engine.runtime",
        ),
        (
            "engine.newmod",
            "from engine.risk import var\n",
            "engine.newmod is not allowed to import engine.risk",
        ),
        (
            "feeds.newmod",
            "from engine.runtime import clock\n",
            "feeds is not allowed to import engine.runtime",
        ),
    ],
)
def test_a_new_module_is_covered(tmp_path: Path, module: str, source: str, broken: str) -> None:
    result = lint_imports(tmp_path, module, source)
    assert result.returncode == 1, result.stdout + result.stderr
    assert broken in result.stdout


def test_the_runtime_may_do_io_and_wire(tmp_path: Path) -> None:
    source = "import asyncio\nimport redis\nfrom engine.risk import var\nfrom feeds import mqtt\n"
    result = lint_imports(tmp_path, "engine.runtime.newmod", source)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
