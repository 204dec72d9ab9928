"""The training loop: 1-N link prediction with reciprocal relations, validation-based model selection, resumable.

Read top to bottom, a run is:

1. load the graph and the feature files, build the model and its optimizers (main, and the CLUB estimators' own);
2. every epoch, shuffle the distinct training queries ``(head, relation)`` (reciprocals included), and for each
   batch build the 0/1 target matrix on the device from the index of known training tails, take the alternating
   estimator step, then the main step (Eq. 8);
3. every ``eval_every`` epochs, rank the validation set (filtered, both directions) and keep the checkpoint with the
   best validation MRR; stop early after ``patience`` evaluations without improvement;
4. load the best checkpoint and evaluate the test set with it, for the final score and for every branch.

The run directory holds ``config.json``, ``metrics.jsonl`` (one JSON object per epoch and per evaluation),
numbered checkpoints ``ckpt-*.pt`` with SHA-256 sidecars, ``best.pt`` and ``results.json``. ``resume=True`` continues
from the newest good checkpoint with the model, both optimizers, the scheduler, the random states and the
early-stopping state, so that an interrupted run ends with the same result as an uninterrupted one on the CPU.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from imvia_core.allocator import allocator_state
from imvia_core.data.filtering import FilterIndex
from imvia_core.data.loading import load_graph
from imvia_core.data.selection import selection_graph
from imvia_core.errors import ConfigError, ImviaError, InputError
from imvia_core.evaluation import evaluate, relation_categories
from imvia_core.evaluation.decision import mean_decision_weights
from imvia_core.evaluation.rank_files import RANK_FILE_NAME, save_rank_file, split_ranks
from imvia_core.model import build_model
from imvia_core.model.kernels.compiled import compile_state
from imvia_core.paths import data_dir, project_root
from imvia_core.progress import bars_disabled
from imvia_core.training.checkpoint import Checkpointer, atomic_write_text, load_checkpoint
from imvia_core.training.config import TrainConfig, differences
from imvia_core.training.guards import DivergenceGuard, EarlyStopper, TrainingDiverged
from imvia_core.training.inputs import find_features
from imvia_core.training.precision import check_precision, cpu_bf16_support, training_autocast
from imvia_core.training.step import (
    Batch,
    Optimizers,
    build_targets,
    make_adam,
    make_optimizers,
    train_step,
    training_queries,
)

__all__ = [
    "train",
    "check_resumable",
    "TrainingDiverged",
    "TrainingStopped",
    "RunContext",
    "prepare_run",
    "evaluate_model",
    "describe_hardware",
    "epoch_order",
    "make_adam",
]


def epoch_order(
    relations: torch.Tensor, batch_size: int, generator: torch.Generator, *, by_relation: bool = False
) -> torch.Tensor:
    """The order in which an epoch visits the training queries: a permutation of ``0..n-1`` (CPU).

    :param relations: shape ``(n,)``: relation id of each query.
    :param by_relation: ``False``: a uniformly random permutation. ``True``: random within each relation, queries
        of one relation contiguous, cut into batches of ``batch_size`` whose order is then shuffled (the last,
        partial batch stays last so that batch boundaries are kept). A batch then holds few distinct relations,
        and each Tucker core is contracted once per distinct relation (:class:`~imvia_core.model.tucker.
        RelationGroups`): at DB15K size about 26 instead of about 200 per batch of 1024.
    """
    n = int(relations.shape[0])
    order = torch.randperm(n, generator=generator)
    if not by_relation:
        return order
    order = order[torch.argsort(relations[order], stable=True)]
    full = n // batch_size
    batch_perm = torch.randperm(full, generator=generator)
    grouped = order[: full * batch_size].view(full, batch_size)[batch_perm].reshape(-1)
    return torch.cat([grouped, order[full * batch_size :]])


class TrainingStopped(Exception):
    """Raised by an ``on_validation`` callback of :func:`train` to end the run after that validation (a pruned
    hyperparameter trial, say). The run keeps its checkpoints and log and finishes normally from its best
    checkpoint; ``results.json`` records ``stopped`` with the exception's message."""


@dataclass(eq=False)
class RunContext:
    """What a run needs besides its configuration: graph, features, model and the training index."""

    config: TrainConfig
    graph: Any
    features: dict[str, Any]
    model: Any
    device: torch.device


# --------------------------------------------------------------------------------------------------- set-up
def resolve_features(config: TrainConfig, graph) -> dict[str, Any]:
    """Load the feature files of ``config`` for ``graph``: ``{"visual": ModalityFeatures | None, "text": ...}``."""

    wanted = {"visual": config.use_visual, "text": config.use_text}
    sources = {"visual": config.visual_features, "text": config.text_features}
    out: dict[str, Any] = {}
    for modality in ("visual", "text"):
        if config.model != "imvia" or not wanted[modality] or sources[modality] == "none":
            out[modality] = None
            continue
        out[modality] = find_features(graph, modality, sources[modality])
    return out


def prepare_run(config: TrainConfig, *, graph: Any = None) -> RunContext:
    """Load data and features and build the model of ``config`` (seeded).

    :param graph: an already loaded :class:`~imvia_core.data.graph.KnowledgeGraph` of ``config.dataset`` to use
        instead of loading it (a sweep worker loads it once, without the test split, for all its trials).
    """

    config.validate()
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {config.device!r}: CUDA is not available on this machine; use --device cpu")

    graph = load_graph(config.dataset) if graph is None else graph
    if graph.published_valid is None:  # not carved yet: the configuration's selection split
        graph = selection_graph(
            graph, split=config.selection_split, fraction=config.selection_fraction, seed=config.selection_seed
        )
    features = resolve_features(config, graph)
    torch.manual_seed(config.seed)
    model_config, execution = config.model_config()
    model = build_model(
        config.model,
        num_entities=graph.num_entities,
        num_relations_with_reciprocals=graph.num_relations_with_reciprocals,
        features=features,
        config=model_config,
        execution=execution,
    ).to(device)
    return RunContext(config=config, graph=graph, features=features, model=model, device=device)


def describe_hardware(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "allocator": allocator_state(),
        "compiled_kernels": compile_state(),
    }
    if device.type == "cpu":
        info["cpu_bf16"], info["cpu_bf16_source"] = cpu_bf16_support()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    if device.type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _autocast(config: TrainConfig, device: torch.device):
    return training_autocast(config.precision, device, amp=config.amp)


# --------------------------------------------------------------------------------------------------- evaluation
def evaluate_model(
    ctx: RunContext, split: str, *, branch: str = "final", progress: bool = True, keep_ranks: bool = False
):
    """Filtered ranking of ``split`` (both directions) with the model's ``branch`` score.

    :param split: ``train``, ``valid``, ``test``, or ``published_valid`` for a run that selects on a held-out split.
    :param keep_ranks: keep the per-query ranks in the result (``result.ranks``).
    """

    model, graph, cfg = ctx.model, ctx.graph, ctx.config
    model.eval()

    @torch.no_grad()
    def scorer(heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        # no autocast here: the evaluator scores in float32 so that ranks do not depend on the training precision
        return model.score_all(heads, relations, branch=branch)

    result = evaluate(
        scorer,
        graph.split(split),
        num_entities=graph.num_entities,
        num_relations=graph.num_relations,
        filter_index=graph.filter_index,
        batch_size=cfg.eval_batch_size,
        device=ctx.device,
        relation_categories=relation_categories(graph.train, graph.num_relations),
        progress=progress,
        keep_ranks=keep_ranks,
    )
    model.train()
    return result


# --------------------------------------------------------------------------------------------------- training
def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()


def _truncate_jsonl(path: Path, *, after_epoch: int) -> None:
    """Drop log lines of epochs after ``after_epoch`` (written after the checkpoint a run resumes from)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # a blank line, or a line cut short by a kill
            continue
        if isinstance(record, dict) and record.get("epoch", 0) <= after_epoch:
            kept.append(line)
    atomic_write_text(path, "".join(ln + "\n" for ln in kept))


#: splits a run may be told to skip (the training split never)
SKIPPABLE_SPLITS = ("valid", "test")


def check_splits(graph, skip_splits: tuple[str, ...] = ()) -> None:
    """Refuse, in one line naming the file, a graph whose train split (or a valid/test split not skipped) is empty."""
    for split in ("train", "valid", "test"):
        if split in skip_splits or graph.split(split).shape[0] > 0:
            continue
        where = graph.split_source(split)
        if split == "train":
            raise InputError(f"{where}: no triples; training needs at least one training triple")
        use = "early stopping and checkpoint selection" if split == "valid" else "the final test metrics"
        raise InputError(
            f"{where}: no triples; the {split} split is needed for {use}. Add triples, or skip the split "
            f"(imvia train --skip-split {split}"
            + ("; the last epoch is then the result)" if split == "valid" else "; no test metrics are reported)")
        )


@dataclass(eq=False)
class _Loop:
    """Everything the epochs share: the run, its optimizers, the training queries, the checkpoints, the state.

    ``state`` (saved in every numbered checkpoint) holds ``epoch`` (epochs done), ``best_mrr``, ``best_epoch``,
    ``bad_evals``, ``train_seconds`` and, once set, ``stopped_early`` and ``stopped``.
    """

    ctx: RunContext
    run_dir: Path
    optimizers: Optimizers
    index: FilterIndex
    q_heads: torch.Tensor
    q_relations: torch.Tensor
    shuffle: torch.Generator
    checkpointer: Checkpointer
    guard: DivergenceGuard
    state: dict[str, Any]

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / "metrics.jsonl"

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(int(self.q_heads.shape[0]) / self.ctx.config.batch_size)


def _start(ctx: RunContext, run_dir: Path, *, resume: bool, progress: bool) -> _Loop:
    """Optimizers, the training queries and their index of known tails, the checkpoints; resumed when asked."""
    cfg, graph, model, device = ctx.config, ctx.graph, ctx.model, ctx.device
    optimizers = make_optimizers(model, lr=cfg.lr, weight_decay=cfg.weight_decay, lr_decay=cfg.lr_decay)
    # the distinct training queries (reciprocals included) and the index of their known tails
    index, q_heads, q_relations = training_queries(graph, device)
    shuffle = torch.Generator().manual_seed(cfg.seed)
    checkpointer = Checkpointer(
        run_dir, model=model, optimizers=optimizers, shuffle=shuffle, device=device, config=cfg.to_dict()
    )
    state = {"epoch": 0, "best_mrr": -1.0, "best_epoch": 0, "bad_evals": 0, "train_seconds": 0.0}
    loop = _Loop(
        ctx, run_dir, optimizers, index, q_heads, q_relations, shuffle, checkpointer, DivergenceGuard(run_dir), state
    )
    path, saved = checkpointer.resume() if resume else (None, None)
    if saved is not None:
        loop.state = saved
        _truncate_jsonl(loop.metrics_path, after_epoch=saved["epoch"])
        if progress:
            tqdm.write(f"resuming {run_dir} from {path.name} (epoch {saved['epoch']})")
    elif loop.metrics_path.exists():  # nothing to resume from: the run starts over, and so does its log
        loop.metrics_path.unlink()
    return loop


def _train_epoch(loop: _Loop, epoch: int) -> dict[str, float]:
    """One pass over the training queries in the epoch's order; logs and returns the mean of each loss term."""
    ctx, cfg = loop.ctx, loop.ctx.config
    t0 = time.perf_counter()
    order = epoch_order(loop.q_relations.cpu(), cfg.batch_size, loop.shuffle, by_relation=cfg.batch_order == "relation")
    order = order.to(ctx.device)
    sums: dict[str, float] = {}
    grad_norm_sum = 0.0
    n = loop.batches_per_epoch
    for b in range(n):
        idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
        heads, relations = loop.q_heads[idx], loop.q_relations[idx]
        batch = Batch(heads, relations, build_targets(loop.index, heads, relations))
        step = train_step(
            ctx.model,
            batch,
            loop.optimizers,
            autocast=lambda: _autocast(cfg, ctx.device),
            max_grad_norm=cfg.max_grad_norm,
            guard=loop.guard.at(epoch, b),
        )
        grad_norm_sum += float(step.grad_norm)
        for k, v in step.terms.items():
            sums[k] = sums.get(k, 0.0) + float(v)
    loop.optimizers.scheduler.step()
    loop.state["epoch"] = epoch + 1
    loop.state["train_seconds"] += time.perf_counter() - t0
    means = {k: v / n for k, v in sums.items()}
    record = {"kind": "train", "epoch": epoch + 1, "seconds": time.perf_counter() - t0, **means}
    record["grad_norm"] = grad_norm_sum / n
    record["lr"] = loop.optimizers.scheduler.get_last_lr()[0]
    _append_jsonl(loop.metrics_path, record)
    return means


def _validate(loop: _Loop, epoch: int, *, on_validation: Callable[[int, float], None] | None, progress: bool) -> bool:
    """Rank the validation split after ``epoch`` (1-based), keep the best weights, checkpoint; ``True``: stop."""
    state = loop.state
    valid = evaluate_model(loop.ctx, "valid", progress=False)
    mrr = valid.metric("mrr")
    loop.guard.check_validation(mrr, epoch)
    stopper = EarlyStopper(loop.ctx.config.patience, state)
    if stopper.observe(mrr, epoch):
        loop.checkpointer.save_best(epoch)
    hits = {f"hits@{k}": valid.metric(f"hits@{k}") for k in (1, 3, 10)}
    _append_jsonl(loop.metrics_path, {"kind": "valid", "epoch": epoch, "mrr": mrr, **hits})
    if progress:
        tqdm.write(f"epoch {epoch}: valid MRR {mrr:.4f} (best {state['best_mrr']:.4f} at {state['best_epoch']})")
    stop = stopper.should_stop()
    loop.checkpointer.save(state)
    if on_validation is not None and not stop:
        try:
            on_validation(epoch, mrr)
        except TrainingStopped as signal:
            state["stopped"] = str(signal) or f"stopped after the validation of epoch {epoch}"
            if progress:
                tqdm.write(f"epoch {epoch}: {state['stopped']}")
            return True
    return stop


def check_resumable(config: TrainConfig, config_path: Path) -> None:
    """A resumed run must have been started with the same configuration (the device may differ)."""
    saved = TrainConfig.from_file(config_path)
    changed = differences(saved.to_dict(), config.to_dict(), ignore=("device",))
    if changed:
        raise ImviaError(
            f"{config_path}: the run was started with another configuration ({'; '.join(changed)}); resume "
            "with the same one, or start a new run directory"
        )


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    skip_splits: tuple[str, ...] | list[str] = (),
    on_validation: Callable[[int, float], None] | None = None,
    graph: Any = None,
) -> dict[str, Any]:
    """Train ``config`` in ``run_dir`` and return the content of ``results.json``.

    Data, features and model are prepared before anything is written, so a run that fails while starting (an
    empty split, a feature file that does not fit) leaves no run directory behind.

    :param resume: continue from the newest good checkpoint in ``run_dir`` (its saved configuration must match).
    :param skip_splits: ``"valid"``: train without validation (no early stopping; the last epoch is the result);
        ``"test"``: report no test metrics. Without them an empty valid or test split is an error.
    :param on_validation: called as ``on_validation(epoch, mrr)`` after each validation, once that validation is
        logged and checkpointed; it may raise :class:`TrainingStopped` to end the run there (the run then finishes
        from its best checkpoint as usual).
    :param graph: the loaded graph to train on (see :func:`prepare_run`); default: load ``config.dataset``.
    """
    skip_splits = tuple(dict.fromkeys(skip_splits))
    unknown = [s for s in skip_splits if s not in SKIPPABLE_SPLITS]
    if unknown:
        raise ConfigError(f"skip_splits: found {unknown}; only {', '.join(SKIPPABLE_SPLITS)} can be skipped")
    run_dir = Path(run_dir)
    if resume and (run_dir / "config.json").is_file():
        check_resumable(config, run_dir / "config.json")
    check_precision(config.precision, torch.device(config.device))  # before anything is written
    ctx = prepare_run(config, graph=graph)
    check_splits(ctx.graph, skip_splits)
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / "config.json")
    loop = _start(ctx, run_dir, resume=resume, progress=progress)
    cfg = ctx.config

    ctx.model.train()
    epochs = tqdm(
        range(loop.state["epoch"], cfg.epochs), desc=f"{cfg.model} on {cfg.dataset}", disable=bars_disabled(progress)
    )
    for epoch in epochs:
        means = _train_epoch(loop, epoch)
        epochs.set_postfix({k: f"{v:.4f}" for k, v in means.items() if k in ("kgc", "align", "mi", "loss")})
        due = (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs
        if "valid" in skip_splits:  # no model selection: the newest epoch is the result
            loop.state.update(best_epoch=epoch + 1)
            if due:
                loop.checkpointer.save_best(epoch + 1)
                loop.checkpointer.save(loop.state)
        elif due and _validate(loop, epoch + 1, on_validation=on_validation, progress=progress):
            break
    else:
        if loop.state["epoch"] % cfg.eval_every != 0 and loop.state["epoch"] < cfg.epochs:
            loop.checkpointer.save(loop.state)

    return finish(ctx, run_dir, loop.state, progress=progress, skip_splits=skip_splits)


def finish(
    ctx: RunContext,
    run_dir: Path,
    state: dict[str, Any],
    *,
    progress: bool = True,
    skip_splits: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Evaluate the best checkpoint on valid and test (final score and every branch) and write ``results.json``.

    The realistic rank of every test and validation query goes to ``ranks.npz`` beside it
    (:mod:`imvia_core.evaluation.rank_files`), written before ``results.json`` so that a finished run has both.
    """

    best_path = run_dir / "best.pt"
    if not best_path.is_file() and state["epoch"] == 0:
        raise ImviaError(f"{run_dir}: no epoch was trained (epochs={ctx.config.epochs}); nothing to evaluate")
    best = load_checkpoint(best_path, map_location=ctx.device)
    ctx.model.load_state_dict(best["model"])
    cfg, graph = ctx.config, ctx.graph
    evaluated = {}
    for split in ("valid", "test", "published_valid"):
        if split in graph.splits and split not in skip_splits:
            evaluated[split] = evaluate_model(ctx, split, progress=progress, keep_ranks=True)
    valid, test = evaluated.get("valid"), evaluated.get("test")
    if evaluated:
        save_rank_file(run_dir / RANK_FILE_NAME, {s: split_ranks(graph.split(s), r) for s, r in evaluated.items()})
    branches = {}
    if test is not None:
        for branch in getattr(ctx.model, "branches", ("final",)):
            if branch != "final":
                branches[branch] = evaluate_model(ctx, "test", branch=branch, progress=False).to_dict()
    decision = None
    if test is not None and hasattr(ctx.model, "inspect"):  # IMVIA: the gate's mean weight per branch (Eq. 7)
        ctx.model.eval()
        decision = mean_decision_weights(ctx.model, graph, split="test")
        ctx.model.train()
    modalities = {m: (f is not None) for m, f in ctx.features.items()}
    selection = "best validation MRR (realistic rank); all test metrics from that checkpoint"
    if valid is None:
        selection = "last epoch (validation skipped); all test metrics from that checkpoint"
    results = {
        "dataset": cfg.dataset,
        "model": cfg.model,
        "config": cfg.to_dict(),
        "dataset_statistics": graph.statistics(),
        "modalities": {"structure": cfg.model != "imvia" or cfg.use_structure, **modalities},
        "feature_sources": {m: portable_metadata(getattr(f, "metadata", None)) for m, f in ctx.features.items()},
        "best_epoch": state["best_epoch"],
        "epochs_trained": state["epoch"],
        "stopped_early": bool(state.get("stopped_early", False)),
        "train_seconds": state["train_seconds"],
        "selection": selection,
        "skipped_splits": list(skip_splits),
        "selection_split": graph.extra.get("selection_split", {"kind": "published"}),
        "valid": valid.to_dict() if valid is not None else None,
        "test": test.to_dict() if test is not None else None,
        "test_branches": branches,
        "rank_file": RANK_FILE_NAME if evaluated else None,
        "hardware": describe_hardware(ctx.device),
        "git_commit": _git_commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if decision is not None:
        results["decision_weights"] = decision
    if "stopped" in state:
        results["stopped"] = state["stopped"]
    if "published_valid" in evaluated:  # selected on a held-out split: the published valid.txt is still reported
        results["valid_published"] = evaluated["published_valid"].to_dict()
        results["selection"] = (
            "best MRR (realistic rank) on the held-out selection split carved from train.txt (results['valid']); "
            "all test and published-validation metrics from that checkpoint"
        )
    bad = non_finite_paths(results)
    if bad:
        raise ImviaError(
            f"{run_dir}: the results hold values that are not finite numbers ({', '.join(bad[:5])}); no "
            "results.json is written. The model's scores are not finite: lower the learning rate or check the features."
        )
    atomic_write_text(run_dir / "results.json", json.dumps(results, indent=2, default=str) + "\n", checksum=True)
    if progress:
        parts = []
        if test is not None:
            parts.append(f"test MRR {test.metric('mrr'):.4f}")
        if valid is not None:
            parts.append(f"best valid MRR {valid.metric('mrr'):.4f} at epoch {state['best_epoch']}")
        tqdm.write(", ".join(parts) or f"trained {state['epoch']} epochs (valid and test skipped)")
    return results


def non_finite_paths(value: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every float in a JSON-ready structure that is NaN or infinite."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [prefix or "(value)"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite_paths(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in non_finite_paths(v, f"{prefix}[{i}]")]
    return []


def portable_metadata(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    """Feature metadata with an absolute file path made portable (:func:`portable_path`), so that a committed
    ``results.json`` reads the same on every machine."""
    if metadata is None:
        return None
    out = dict(metadata)
    for key in ("source", "path", "file"):
        value = out.get(key)
        if isinstance(value, str) and os.path.isabs(value):
            out[key] = portable_path(Path(value))
    return out


def portable_path(path: Path) -> str:
    """``data/<...>`` for a file in the data folder, a project-relative path for one in the checkout, else the
    file name alone."""

    resolved = path.resolve()
    for root, prefix in ((data_dir(), Path("data")), (project_root(), Path())):
        try:
            return (prefix / resolved.relative_to(root.resolve())).as_posix()
        except ValueError:
            continue
    return path.name
