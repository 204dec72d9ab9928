"""Every function of the library and of the benchmark reads in one sitting: at most 100 lines, docstring included."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 100


def _function_lengths() -> list[tuple[int, str]]:
    found = []
    for folder in ("imvia_core", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    where = f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
                    found.append((node.end_lineno - node.lineno + 1, where))
    return found


def test_no_function_is_over_100_lines() -> None:
    lengths = _function_lengths()
    assert len(lengths) > 500  # the walk found the code
    too_long = sorted((n, where) for n, where in lengths if n > MAX_LINES)
    assert not too_long, too_long
