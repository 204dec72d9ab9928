"""What limits IMVIA (imvia_core.reporting.limits): degrees, MRR by the answer's degree, branch scores, the figure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imvia_core.errors import InputError
from imvia_core.evaluation.rank_files import SplitRanks, save_rank_file
from imvia_core.reporting.limits import (
    branch_frame,
    entity_degrees,
    limits_frames,
    main,
    mrr_by_degree,
    seed_results,
    write_limits,
)

TRIPLES = np.array([[0, 0, 1], [2, 0, 3], [4, 1, 4]])


def test_entity_degrees_counts_triples_not_ends() -> None:
    degrees = entity_degrees(np.array([[0, 0, 1], [0, 1, 2], [3, 0, 3]]), 5)
    assert degrees.tolist() == [2, 1, 1, 1, 0]  # the self-loop (3, 0, 3) counts once; entity 4 has none
    with pytest.raises(InputError, match=r"\(n, 3\)"):
        entity_degrees(np.zeros((4, 2)), 5)


def test_mrr_by_degree_groups_queries_by_their_answer() -> None:
    # tail answers 1, 3, 4; head answers 0, 2, 4
    ranks = SplitRanks(triples=TRIPLES, ranks=np.array([[1.0, 2.0, 4.0], [1.0, 1.0, 10.0]]))
    degrees = np.array([0, 3, 30, 8, 0])
    frame = mrr_by_degree([ranks], degrees, few=5).set_index("bin")
    assert frame.loc["0 (unseen)", "queries"] == 3  # entity 0 (a head query) and entity 4 (both directions)
    assert frame.loc["0 (unseen)", "MRR"] == pytest.approx(100 * (1 + 1 / 4 + 1 / 10) / 3)
    assert frame.loc["1-5", "MRR"] == pytest.approx(100.0)  # entity 1, rank 1
    assert frame.loc["6-20", "MRR"] == pytest.approx(50.0)  # entity 3, rank 2
    assert frame.loc["> 20", "MRR"] == pytest.approx(100.0)  # entity 2, rank 1
    assert frame.loc["<= 5 (few)", "queries"] + frame.loc["> 5 (rest)", "queries"] == 6
    assert frame.loc["> 5 (rest)", "MRR"] == pytest.approx(75.0)


def test_mrr_by_degree_averages_seeds_query_by_query() -> None:
    one = SplitRanks(triples=TRIPLES, ranks=np.ones((2, 3)))
    two = SplitRanks(triples=TRIPLES, ranks=np.full((2, 3), 4.0))
    frame = mrr_by_degree([one, two], np.full(5, 50)).set_index("bin")
    assert frame.loc["> 20", "MRR"] == pytest.approx(100 * (1 + 0.25) / 2)
    assert pd.isna(frame.loc["1-5", "MRR"]) and frame.loc["1-5", "queries"] == 0  # empty bin: no number
    other = SplitRanks(triples=TRIPLES[::-1].copy(), ranks=np.ones((2, 3)))
    with pytest.raises(InputError, match="different triples"):
        mrr_by_degree([one, other], np.full(5, 50))
    with pytest.raises(InputError, match="no degree"):
        mrr_by_degree([one], np.full(3, 1))


def _result(mrr: float, branches: dict[str, float], gate: dict[str, float] | None = None) -> dict:
    def block(value: float) -> dict:
        return {"metrics": {"realistic": {"overall": {"mrr": value}}}}

    data = {
        "dataset": "toy",
        "config": {},
        "test": block(mrr),
        "test_branches": {b: block(v) for b, v in branches.items()},
    }
    if gate is not None:
        data["decision_weights"] = gate
    return data


def test_branch_frame_averages_seeds_and_keeps_missing_gate_weights_empty() -> None:
    runs = [_result(0.30, {"S": 0.28, "T": 0.02}, {"S": 0.9, "T": 0.1}), _result(0.32, {"S": 0.30, "T": 0.04})]
    frame = branch_frame(runs).set_index("branch")
    assert frame.loc["fused", "MRR"] == pytest.approx(31.0) and frame.loc["fused", "seeds"] == 2
    assert frame.loc["text", "MRR"] == pytest.approx(3.0)
    assert frame.loc["structure", "gate weight"] == pytest.approx(0.9)  # from the one run that recorded it
    assert pd.isna(frame.loc["fused", "gate weight"])


def _publish(folder: Path, name: str, data: dict, ranks: np.ndarray | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(data))
    if ranks is not None:
        save_rank_file(folder / f"{name}.ranks.npz", {"test": SplitRanks(triples=TRIPLES, ranks=ranks)})


class _Graph:
    num_entities = 5

    def split(self, name: str):
        import torch

        assert name == "train"
        return torch.tensor([[0, 0, 1], [1, 0, 2], [2, 1, 3], [2, 0, 1]])


def test_write_limits_saves_figure_and_csv(tmp_path: Path) -> None:
    folder = tmp_path / "results" / "cpu" / "toy"
    _publish(folder, "imvia", _result(0.5, {"S": 0.4, "T": 0.1}, {"S": 0.7, "T": 0.3}), np.ones((2, 3)))
    _publish(folder, "imvia-seed1", _result(0.4, {"S": 0.3, "T": 0.1}), np.full((2, 3), 2.0))
    _publish(folder, "imvia-seed2", _result(0.4, {"S": 0.3, "T": 0.1}), None)  # no rank file: left out
    _publish(folder, "imvia-no-text", _result(0.1, {"S": 0.1}), np.ones((2, 3)))  # another variant: left out
    _publish(folder, "tucker", _result(0.3, {}), np.full((2, 3), 3.0))
    assert [p.name for p in seed_results(folder, "imvia")] == ["imvia-seed1.json", "imvia-seed2.json", "imvia.json"]
    fig, paths, by_degree, branches = write_limits("toy", _Graph(), tmp_path / "results", tmp_path / "fig")
    assert len(fig.axes) == 2
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths.values())
    assert by_degree.groupby("variant")["seeds"].first().to_dict() == {"imvia": 2, "tucker": 1}
    rest = by_degree.set_index(["variant", "bin"]).loc[("imvia", "<= 5 (few)"), "MRR"]
    assert rest == pytest.approx(75.0)  # every answer has at most 3 training triples; ranks 1 and 2 averaged
    assert branches.set_index("branch").loc["fused", "MRR"] == pytest.approx(45.0)
    csv = pd.read_csv(paths["csv"])
    assert set(csv["section"]) == {"MRR by answer degree", "IMVIA branch alone"}
    with pytest.raises(InputError, match="no published tucker run"):
        (folder / "tucker.ranks.npz").unlink()
        limits_frames(folder, np.zeros(5, dtype=int))


def test_command_line_names_what_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--datasets", "synthetic", "--results", str(tmp_path), "--out", str(tmp_path / "fig")])
    out = capsys.readouterr().out
    assert code == 1 and out.startswith("synthetic: ") and "no published imvia run" in out
    assert "Traceback" not in out
