"""The README's results tables, written from the committed ``results/`` files so that they cannot drift.

The README holds a block between ``<!-- results:begin -->`` and ``<!-- results:end -->``. :func:`render_block`
writes it from ``results/<profile>/<dataset>/<variant>.json``; ``python -m imvia_core.reporting.readme`` refreshes
the README in place and ``--check`` exits with status 1 when the block differs from what the files give (a test in
``make test`` does the same check).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from imvia_core.errors import InputError
from imvia_core.paths import project_root, results_dir
from imvia_core.reporting.results import NOT_PROFILES

__all__ = ["BEGIN", "END", "render_block", "refresh_readme", "main"]

BEGIN = "<!-- results:begin (written by python -m imvia_core.reporting.readme from results/; do not edit) -->"
END = "<!-- results:end -->"

#: branch key of a run's ``test_branches`` -> column name
_BRANCHES = {"S": "S alone", "V": "V alone", "T": "T alone", "J": "J alone"}


def _mrr(result: dict | None) -> float | None:
    if not result:
        return None
    return 100.0 * result["metrics"][result.get("headline_rank_type", "realistic")]["overall"]["mrr"]


def _hits(result: dict, k: int) -> float:
    return 100.0 * result["metrics"][result.get("headline_rank_type", "realistic")]["overall"][f"hits@{k}"]


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _rows(profile_dir: Path) -> list[tuple[str, str, dict]]:
    rows = []
    for path in sorted(profile_dir.glob("*/*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise InputError(f"{path}: not a readable results file ({err})") from err
        if data.get("test") is None:
            continue
        rows.append((path.parent.name, path.stem, data))
    return rows


def _table(rows: list[tuple[str, str, dict]], *, minutes: bool) -> list[str]:
    branches = [b for b in _BRANCHES if any(b in data.get("test_branches", {}) for _, _, data in rows)]
    published = any(data.get("valid_published") for _, _, data in rows)  # selected on a held-out split
    header = ["dataset", "variant", "modalities", "test MRR", "H@1", "H@10", "valid MRR"]
    header += ["published valid MRR"] if published else []
    header += [_BRANCHES[b] for b in branches] + ["best / trained epochs"] + (["train min"] if minutes else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for dataset, variant, data in rows:
        test = data["test"]
        modalities = "+".join(m[0].upper() for m, on in data.get("modalities", {}).items() if on) or "S"
        cells = [dataset, variant, modalities, _fmt(_mrr(test)), _fmt(_hits(test, 1)), _fmt(_hits(test, 10))]
        cells.append(_fmt(_mrr(data.get("valid"))))
        if published:
            cells.append(_fmt(_mrr(data.get("valid_published"))))
        cells += [_fmt(_mrr(data.get("test_branches", {}).get(b))) for b in branches]
        cells.append(f"{data.get('best_epoch')} / {data.get('epochs_trained')}")
        if minutes:
            cells.append(f"{data.get('train_seconds', 0.0) / 60:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_block(results_root: str | Path | None = None) -> str:
    """The Markdown between the markers: one table per profile folder of ``results_root`` (``ci`` first)."""
    root = Path(results_root) if results_root is not None else results_dir()

    profiles = sorted(
        (p for p in root.iterdir() if p.is_dir() and p.name not in NOT_PROFILES and any(p.glob("*/*.json"))),
        key=lambda p: p.name,
    )
    profiles.sort(key=lambda p: p.name != "ci")
    parts = [BEGIN]
    for profile in profiles:
        rows = _rows(profile)
        if not rows:
            continue
        parts.append("")
        parts.append(
            f"`{profile.name}` profile (`results/{profile.name}/`; test metrics in %, filtered, realistic ranks, from "
            'the validation-selected checkpoint; "X alone": the score of one branch of the same checkpoint'
            + (
                '; "valid MRR" is the split selected on: the held-out part of train.txt where a '
                '"published valid MRR" is given, the published valid.txt otherwise'
                if any(data.get("valid_published") for _, _, data in rows)
                else ""
            )
            + "):"
        )
        parts.append("")
        parts += _table(rows, minutes=profile.name != "ci")
    parts += ["", END]
    return "\n".join(parts)


def refresh_readme(readme: str | Path | None = None, *, results_root: str | Path | None = None) -> bool:
    """Rewrite the block of ``readme`` (default the checkout's README.md); ``True`` when it changed."""
    path = Path(readme) if readme is not None else project_root() / "README.md"
    text = path.read_text(encoding="utf-8")
    new = replace_block(text, render_block(results_root), source=path)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


def replace_block(text: str, block: str, *, source: Path | str = "README.md") -> str:
    """``text`` with the block between the markers replaced by ``block`` (which holds the markers)."""
    start = text.find(BEGIN)
    end = text.find(END)
    if start < 0 or end < start:
        raise InputError(f"{source}: found no results block; expected a line {BEGIN!r} and, later, {END!r}")
    return text[:start] + block + text[end + len(END) :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m imvia_core.reporting.readme",
        description="Write the README's results tables from results/ (between the results:begin/end markers).",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the README's block is stale; change nothing")
    parser.add_argument("--readme", type=Path, default=None, help="the README to refresh (default README.md)")
    args = parser.parse_args(argv)
    path = args.readme or project_root() / "README.md"
    try:
        if args.check:
            text = path.read_text(encoding="utf-8")
            if replace_block(text, render_block(), source=path) != text:
                print(f"{path}: the results block is stale; run python -m imvia_core.reporting.readme", file=sys.stderr)
                return 1
            print(f"{path}: the results block matches results/")
            return 0
        changed = refresh_readme(path)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{path}: results block {'rewritten' if changed else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
