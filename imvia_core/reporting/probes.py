"""Looking inside a trained run: the selected checkpoint, query batches, per-modality embeddings, view weights.

The notebooks use these to show what Eq. 1-7 compute on real queries; nothing here trains or changes a model.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from imvia_core.errors import InputError
from imvia_core.evaluation.decision import mean_decision_weights
from imvia_core.paths import project_root
from imvia_core.training.checkpoint import load_checkpoint
from imvia_core.training.config import TrainConfig
from imvia_core.training.trainer import prepare_run

__all__ = [
    "load_trained_run",
    "sample_queries",
    "modality_embeddings",
    "view_weight_frame",
    "display_path",
    "mean_decision_weights",
]

_FEATURE_MODALITY = {"V": "visual", "T": "text"}


def display_path(path: str | Path) -> str:
    """``path`` relative to the project checkout when it lies inside it (for printing), else as given."""
    resolved, root = Path(path).resolve(), project_root().resolve()
    return str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(path)


def load_trained_run(run_dir: str | Path, *, device: str | torch.device = "cpu"):
    """Rebuild the model of ``run_dir`` (its ``config.json``) with the checkpoint selected on validation (``best.pt``).

    :param run_dir: a finished run directory (``config.json`` and ``best.pt`` with its checksum).
    :param device: where to put the model (the run may have trained elsewhere).
    :return: a :class:`~imvia_core.training.trainer.RunContext` whose model is in eval mode.
    :raises InputError: when the run directory lacks ``config.json`` or ``best.pt``.
    """
    run_dir = Path(run_dir)
    for name in ("config.json", "best.pt"):
        if not (run_dir / name).is_file():
            raise InputError(f"{run_dir}: found no {name}; expected a finished run directory (train it first)")
    config = TrainConfig.from_file(run_dir / "config.json")
    config.device = str(device)
    ctx = prepare_run(config)
    ctx.model.load_state_dict(load_checkpoint(run_dir / "best.pt", map_location=ctx.device)["model"])
    ctx.model.eval()
    return ctx


def sample_queries(
    graph, *, split: str = "train", max_queries: int | None = None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Queries ``(h, r, ?)`` of ``split`` in both directions (reciprocal relations ``r + R`` for head prediction).

    :param graph: a :class:`~imvia_core.data.graph.KnowledgeGraph`.
    :param split: ``train``, ``valid`` or ``test``.
    :param max_queries: keep a random subset of this size (seeded); ``None`` keeps every query.
    :param seed: seed of the subset.
    :return: ``heads``, ``relations``, ``tails``, each shape ``(n,)``.
    """
    triples = graph.with_reciprocals(split)
    if max_queries is not None and max_queries < len(triples):
        order = torch.randperm(len(triples), generator=torch.Generator().manual_seed(seed))[:max_queries]
        triples = triples[order.sort().values]
    return triples[:, 0], triples[:, 1], triples[:, 2]


@torch.no_grad()
def modality_embeddings(
    model, heads: torch.Tensor, relations: torch.Tensor
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The per-modality head embeddings ``e_hat_m`` that Eq. 4 (CLUB) and Eq. 5 (alignment) act on.

    Same encoding as the training step: the structural embedding for ``S``; the relation-gated multi-view fusion
    (Eq. 1-3) for ``V`` and ``T``, with the model's learned vector for entities without a view of the modality.

    :param model: a trained :class:`~imvia_core.model.imvia.IMVIA`.
    :param heads: shape ``(B,)``.
    :param relations: shape ``(B,)`` (reciprocals included).
    :return: ``embeddings`` modality -> ``(B, d)`` and ``present`` modality -> ``(B,)`` bool (``V``/``T`` only).
    """
    modalities = tuple(getattr(model, "modalities", ()))
    if not modalities:
        raise InputError(f"{type(model).__name__}: found no modality embeddings; expected an IMVIA model")
    encoded = model._encode(heads, model.relation_embeddings["S"](relations), set(modalities))
    return {m: encoded.emb[m] for m in modalities}, dict(encoded.present)


def view_weight_frame(
    inspection,
    *,
    heads: torch.Tensor,
    relations: torch.Tensor,
    relevance: dict[str, torch.Tensor] | None = None,
) -> pd.DataFrame:
    """One row per valid view of each query's head: the Eq. 2 weight ``alpha`` and, when known, its relevance.

    :param inspection: :meth:`IMVIA.inspect` of the queries ``(heads, relations)``.
    :param heads: shape ``(B,)``.
    :param relations: shape ``(B,)``.
    :param relevance: ground truth per feature modality (``"visual"``/``"text"``) -> ``(E, K)`` bool, e.g.
        :attr:`~imvia_core.data.synthetic.SyntheticKG.view_relevance`; adds the column ``relevant``.
    :return: columns ``query``, ``modality`` (``V``/``T``), ``relation``, ``slot``, ``views`` (valid views of the
        head), ``weight`` and optionally ``relevant``.
    """
    parts = []
    for m, weights in inspection.view_weights.items():
        mask, weights = inspection.view_mask[m].cpu(), weights.float().cpu()
        rows, slots = torch.nonzero(mask, as_tuple=True)
        part = {
            "query": rows.numpy(),
            "modality": m,
            "relation": relations.cpu()[rows].numpy(),
            "slot": slots.numpy(),
            "views": mask.sum(1)[rows].numpy(),
            "weight": weights[rows, slots].numpy(),
        }
        if relevance is not None and _FEATURE_MODALITY.get(m) in relevance:
            truth = relevance[_FEATURE_MODALITY[m]].cpu()[heads.cpu()]
            if truth.shape != mask.shape:
                raise InputError(
                    f"relevance[{_FEATURE_MODALITY[m]!r}]: found {tuple(truth.shape[1:])} views per entity; expected "
                    f"{tuple(mask.shape[1:])} as in the model's {m} views"
                )
            part["relevant"] = truth[rows, slots].numpy()
        parts.append(pd.DataFrame(part))
    if not parts:
        return pd.DataFrame(columns=["query", "modality", "relation", "slot", "views", "weight"])
    return pd.concat(parts, ignore_index=True)
