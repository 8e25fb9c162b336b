"""The code's shape, as STYLE.md asks it (issue 15): no class in ``engine/`` or ``feeds/`` spans
more than 400 lines, "a sign that two things share a room". Read from the source files (ast), so
a new module is covered by default.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_CLASS_LINES = 400


def class_spans(root: Path) -> dict[tuple[str, str], int]:
    """Lines spanned by every class (nested ones too) of the ``.py`` files under ``root``, by
    (path, name); a class spans from its first decorator to its last line."""
    spans: dict[tuple[str, str], int] = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno is not None  # set by ast.parse
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                where = (path.relative_to(ROOT).as_posix(), node.name)
                spans[where] = max(spans.get(where, 0), node.end_lineno - first + 1)
    return spans


def test_the_spans_are_measured() -> None:
    spans = class_spans(ROOT / "engine")
    assert ("engine/state.py", "Portfolio") in spans
    assert all(n > 0 for n in spans.values())


def test_no_class_in_engine_or_feeds_spans_more_than_400_lines() -> None:
    spans = {**class_spans(ROOT / "engine"), **class_spans(ROOT / "feeds")}
    too_long = {where: n for where, n in spans.items() if n > MAX_CLASS_LINES}
    assert too_long == {}
