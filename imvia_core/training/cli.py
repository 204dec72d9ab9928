"""``imvia train``, ``imvia evaluate`` and ``imvia demo``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from imvia_core.data.selection import SELECTION_SPLITS
from imvia_core.errors import InputError
from imvia_core.evaluation.metrics import HEADLINE_METRICS
from imvia_core.model.factory import MODEL_NAMES
from imvia_core.model.imvia import MI_PLACEMENTS
from imvia_core.model.joint import DECISION_FUSION_MODES
from imvia_core.training.config import BATCH_ORDERS, PROFILES, TrainConfig, profile_config
from imvia_core.training.precision import PRECISIONS

__all__ = ["register"]

_BOOL_SWITCHES = {
    "no_structure": "use_structure",
    "no_visual": "use_visual",
    "no_text": "use_text",
    "no_joint": "use_joint",
}


def _train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", help="DB15K, MKG-W, MKG-Y, synthetic, or a folder (default: synthetic)")
    p.add_argument(
        "--model",
        default=None,
        help=f"imvia (default), or a structure-only baseline: {', '.join(MODEL_NAMES[1:])}",
    )
    p.add_argument(
        "--profile",
        default="cpu",
        choices=sorted(PROFILES),
        help="per-dataset defaults: 'paper' (the reference GPU settings), 'cpu' (about an hour on a 2-core CPU), "
        "'ci' (synthetic, about a minute). Options given here override the profile. Default: cpu",
    )
    p.add_argument(
        "--config", type=Path, help="a JSON or YAML file of options (applied after the profile, before flags)"
    )
    p.add_argument("--run-dir", type=Path, help="where checkpoints and results go (default: runs/<dataset>-<model>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its newest good checkpoint")
    p.add_argument("--lr", type=float, help="learning rate of the main optimizer (Adam)")
    p.add_argument("--mu", type=float, help="weight of the mutual-information bound (Eq. 4), as the upstream --mu")
    p.add_argument("--lambda-align", type=float, help="weight of the contrastive alignment loss (Eq. 5)")
    p.add_argument("--dim", type=int, help="embedding dimension of every branch")
    p.add_argument("--epochs", type=int, help="maximum number of epochs")
    p.add_argument("--batch-size", type=int, help="queries per 1-N batch")
    p.add_argument(
        "--batch-order",
        choices=BATCH_ORDERS,
        help="'random' (default), or 'relation': queries of one relation batched together (fewer Tucker core "
        "contractions per batch)",
    )
    p.add_argument("--eval-every", type=int, help="validate every N epochs")
    p.add_argument(
        "--eval-batch-size", type=int, help="queries scored at once in evaluation (default 2048; 4096 or more on a GPU)"
    )
    p.add_argument("--patience", type=int, help="stop after N validations without a better MRR (0: never)")
    p.add_argument(
        "--selection-split",
        choices=SELECTION_SPLITS,
        help="what early stopping and checkpoint selection rank: 'published' (valid.txt) or 'heldout' (a seeded "
        "share of train.txt, removed from training; valid.txt is then still reported). Default: the profile's "
        "(heldout for DB15K in the cpu profile, published elsewhere)",
    )
    p.add_argument("--selection-fraction", type=float, help="share of the training triples held out (default 0.05)")
    p.add_argument("--selection-seed", type=int, help="seed of the held-out selection split (default 0)")
    p.add_argument("--num-views", type=int, help="expert views per single-vector feature (Eq. 1-3)")
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--lr-decay", type=float, help="multiply the learning rate by this after every epoch")
    p.add_argument("--visual-features", help="visual feature file, 'auto' or 'none'")
    p.add_argument("--text-features", help="text feature file, 'auto' or 'none'")
    p.add_argument("--decision-fusion", choices=DECISION_FUSION_MODES, help="relation-aware gate or uniform average")
    p.add_argument("--mi-between", choices=MI_PLACEMENTS, help="apply the CLUB bound between modalities or views")
    for flag, field in _BOOL_SWITCHES.items():
        p.add_argument(f"--{flag.replace('_', '-')}", action="store_true", help=f"ablation: set {field}=false (Fig. 2)")
    p.add_argument("--device", help="cpu, cuda, cuda:0, mps ... (default: cpu)")
    p.add_argument("--cuda", type=int, metavar="N", help="same as --device cuda:N (the upstream spelling)")
    p.add_argument("--no-amp", action="store_true", help="disable bf16 mixed precision on CUDA")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="fp32 (default), or bf16 autocast for the training forward GEMMs on a CPU with AVX-512-BF16 or AMX "
        "(detected; an error elsewhere); losses, softmaxes and Adam states stay fp32, evaluation scores in fp32",
    )
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--skip-split",
        action="append",
        choices=("valid", "test"),
        default=[],
        help="train without this split (repeatable): 'valid' (no early stopping; the last epoch is the result) or "
        "'test' (no test metrics). Without it, an empty valid.txt or test.txt is an error",
    )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values = {}
    sources: dict[str, str] = {}
    if args.config is not None:
        values.update(TrainConfig.read_file(args.config))
        sources.update(dict.fromkeys(values, str(args.config)))
    flags = {
        "model": args.model,
        "lr": args.lr,
        "mu": args.mu,
        "lambda_align": args.lambda_align,
        "dim": args.dim,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "batch_order": args.batch_order,
        "eval_every": args.eval_every,
        "eval_batch_size": args.eval_batch_size,
        "patience": args.patience,
        "selection_split": args.selection_split,
        "selection_fraction": args.selection_fraction,
        "selection_seed": args.selection_seed,
        "num_views": args.num_views,
        "label_smoothing": args.label_smoothing,
        "lr_decay": args.lr_decay,
        "visual_features": args.visual_features,
        "text_features": args.text_features,
        "decision_fusion": args.decision_fusion,
        "mi_between": args.mi_between,
        "device": f"cuda:{args.cuda}" if args.cuda is not None else args.device,
        "seed": args.seed,
        "precision": args.precision,
    }
    if args.no_amp:
        flags["amp"] = False
    for flag, field in _BOOL_SWITCHES.items():
        if getattr(args, flag):
            flags[field] = False
    given = {k: v for k, v in flags.items() if v is not None}
    values.update(given)
    for key in given:
        sources.pop(key, None)  # a flag's value overrides the file's: errors then name the value given
    dataset = args.dataset or values.pop("dataset", None) or "synthetic"
    values.pop("dataset", None)
    return profile_config(args.profile, dataset, sources=sources, **values)


def _default_run_dir(cfg: TrainConfig) -> Path:
    from imvia_core.paths import runs_dir

    parts = [Path(cfg.dataset).name, cfg.model]
    parts += [f"no-{m}" for m in ("structure", "visual", "text", "joint") if not getattr(cfg, f"use_{m}")]
    return runs_dir() / "-".join(parts)


def _cmd_train(args: argparse.Namespace) -> int:
    from imvia_core.training.trainer import train

    cfg = config_from_args(args)
    run_dir = args.run_dir or _default_run_dir(cfg)
    results = train(cfg, run_dir, resume=args.resume, skip_splits=args.skip_split)
    test = results["test"]
    summary = {"run_dir": str(run_dir), "best_epoch": results["best_epoch"]}
    summary["test"] = _headline(test) if test is not None else "skipped"
    print(json.dumps(summary, indent=2))
    return 0


def _headline(result: dict) -> dict:
    from imvia_core.evaluation import EvaluationResult

    r = EvaluationResult.from_dict(result)
    return {k: round(r.metric(k), 4) for k in HEADLINE_METRICS}


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from imvia_core.training.checkpoint import load_checkpoint
    from imvia_core.training.trainer import evaluate_model, prepare_run

    run_dir = Path(args.run_dir)
    if not (run_dir / "config.json").is_file():
        raise InputError(f"{run_dir}: not a run directory (no config.json); expected a folder written by imvia train")
    if not (run_dir / args.checkpoint).is_file():
        kept = sorted(p.name for p in run_dir.glob("*.pt"))
        raise InputError(
            f"{run_dir / args.checkpoint}: no such checkpoint; this run has {', '.join(kept) or 'none yet'}"
        )
    cfg = TrainConfig.from_file(run_dir / "config.json")
    if args.device:
        cfg.device = args.device
    ctx = prepare_run(cfg)
    if args.split not in ctx.graph.splits:
        from imvia_core.errors import ConfigError

        raise ConfigError(
            f"--split {args.split}: {run_dir} selected on the published valid.txt, so 'valid' is that split"
        )
    ctx.model.load_state_dict(load_checkpoint(run_dir / args.checkpoint, map_location=ctx.device)["model"])
    result = evaluate_model(ctx, args.split, branch=args.branch)
    print(result.summary())
    return 0


def _cmd_experiment(args: argparse.Namespace) -> int:
    from imvia_core.training.experiments import ABLATION_VARIANTS, TABLE_VARIANTS, run_variant

    groups = {
        "table": TABLE_VARIANTS,
        "ablation": ABLATION_VARIANTS,
        "all": tuple(dict.fromkeys(TABLE_VARIANTS + ABLATION_VARIANTS)),
    }
    names = groups.get(args.variants) or tuple(v.strip() for v in args.variants.split(",") if v.strip())
    overrides = {"device": args.device} if args.device else {}
    for name in names:
        for seed in args.seeds:
            results = run_variant(name, dataset=args.dataset, profile=args.profile, seed=seed, **overrides)
            line = {"variant": name, "seed": seed, "run_dir": results["run_dir"]}
            for split in ("test", "valid"):
                line[split] = _headline(results[split]) if results.get(split) else None
            print(json.dumps(line))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """Generate the synthetic graph, print its statistics, and rank its test set with a trivial scorer."""
    from imvia_core.data.loading import load_graph
    from imvia_core.evaluation import PopularityScorer, evaluate, relation_categories

    graph = load_graph("synthetic")
    print("synthetic multi-modal knowledge graph")
    for key, value in graph.statistics().items():
        print(f"  {key:<10}{value:>8}")
    scorer = PopularityScorer(graph.train, num_entities=graph.num_entities, num_relations=graph.num_relations)
    result = evaluate(
        scorer,
        graph.test,
        num_entities=graph.num_entities,
        num_relations=graph.num_relations,
        filter_index=graph.filter_index,
        relation_categories=relation_categories(graph.train, graph.num_relations),
    )
    print("\nfiltered test ranking with the popularity scorer (a floor every model must beat):")
    print(result.summary())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train IMVIA or a baseline; validation-selected test results go to <run-dir>/results.json",
        description=(
            "Train with 1-N scoring and reciprocal relations. Every eval-every epochs the validation set is ranked "
            "(filtered, both directions); the checkpoint with the best validation MRR is the result, and every test "
            "metric comes from it. Interrupt at any time and continue with --resume."
        ),
    )
    _train_arguments(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="rank a split with a trained run's checkpoint")
    p.add_argument("run_dir", type=Path, help="a run directory written by 'imvia train'")
    p.add_argument(
        "--split",
        default="test",
        choices=("train", "valid", "test", "published_valid"),
        help="split to rank; 'valid' is the run's selection split, 'published_valid' the published valid.txt of a "
        "run that selected on a held-out split",
    )
    p.add_argument("--branch", default="final", help="final (default) or one branch: S, V, T, J")
    p.add_argument("--checkpoint", default="best.pt", help="checkpoint file in the run directory (default best.pt)")
    p.add_argument("--device", help="override the run's device")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "experiment",
        help="train (or reuse) named variants of one dataset and publish their results under results/",
        description=(
            "Runs the Table II rows (imvia, tucker) and the Fig. 2 ablation variants with a profile's settings. "
            "Finished runs with the same configuration are reused; interrupted ones are resumed."
        ),
    )
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
    p.add_argument(
        "--variants",
        default="table",
        help="comma-separated variant names, or 'table' (imvia, tucker) or 'ablation' (imvia and its four "
        "ablations) or 'all'",
    )
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0],
        metavar="SEED",
        help="train one run per seed (default: 0); seed 0 is published as results/<profile>/<dataset>/<variant>.json, "
        "seed N as <variant>-seedN.json, each with its per-query rank file <...>.ranks.npz",
    )
    p.add_argument("--device", help="cpu, cuda:0, ...")
    p.set_defaults(func=_cmd_experiment)

    p = sub.add_parser("demo", help="the built-in synthetic dataset end to end (statistics and a ranked test set)")
    p.set_defaults(func=_cmd_demo)
