"""``imvia train``, ``imvia evaluate`` and ``imvia demo``."""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import Field, fields
from pathlib import Path

from imvia_core.data.loading import load_graph
from imvia_core.errors import ConfigError, InputError
from imvia_core.evaluation import EvaluationResult, PopularityScorer, evaluate, relation_categories
from imvia_core.evaluation.metrics import HEADLINE_METRICS
from imvia_core.paths import runs_dir
from imvia_core.training.checkpoint import load_checkpoint
from imvia_core.training.config import MODEL_OPTIONS, PROFILES, ModelOption, TrainConfig, profile_config
from imvia_core.training.experiments import ABLATION_VARIANTS, TABLE_VARIANTS, run_variant
from imvia_core.training.publish import publish_variant
from imvia_core.training.trainer import evaluate_model, prepare_run, train

__all__ = ["register"]

_BOOL_SWITCHES = {
    "no_structure": "use_structure",
    "no_visual": "use_visual",
    "no_text": "use_text",
    "no_joint": "use_joint",
}


_FLAG_TYPES = {"int": int, "float": float, "str": str}


def config_flag_fields() -> list[Field]:
    """The :class:`TrainConfig` fields that are ``imvia train`` flags of their own (``--<name>``)."""
    return [f for f in fields(TrainConfig) if f.metadata.get("flag")]


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """One ``--flag`` per field of :func:`config_flag_fields`: its type, its choices and its doc as help."""
    for f in config_flag_fields():
        p.add_argument(
            f"--{f.name.replace('_', '-')}",
            type=_FLAG_TYPES[str(f.type)],
            choices=f.metadata.get("choices"),
            help=f.metadata["help"],
        )


def _plain(doc: str) -> str:
    """A field doc without its reST markup, for ``--help``: ``x`` -> x, :func:`~a.b` -> b."""
    doc = re.sub(r":\w+:`~?([\w.]+)`", lambda m: m.group(1).rsplit(".", 1)[-1], doc)
    return doc.replace("``", "").replace("%", "%%")


def model_option_help(option: ModelOption) -> str:
    """The ``--help`` text of a model option's flag: its doc, its model configuration and its default there."""
    return f"{_plain(option.help)} ({option.owner.__name__}.{option.name}, default {option.default!r})"


def add_model_option_flags(p: argparse.ArgumentParser) -> None:
    """One ``--flag`` per entry of :data:`~imvia_core.training.config.MODEL_OPTIONS` (``--flag/--no-flag`` for a
    switch), typed and documented from the model's configuration; unset, the profile's value or the default stays."""
    group = p.add_argument_group("model options", "further fields of the model's configuration, by name")
    for option in MODEL_OPTIONS.values():
        flag = f"--{option.name.replace('_', '-')}"
        if option.type == "bool":
            group.add_argument(flag, action=argparse.BooleanOptionalAction, help=model_option_help(option))
        else:
            kind = _FLAG_TYPES[option.type.removesuffix(" | None")]
            group.add_argument(flag, type=kind, choices=option.choices, help=model_option_help(option))


def _train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", help=TrainConfig.__dataclass_fields__["dataset"].metadata["help"])
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
    add_config_flags(p)
    add_model_option_flags(p)
    for flag, field in _BOOL_SWITCHES.items():
        p.add_argument(f"--{flag.replace('_', '-')}", action="store_true", help=f"ablation: set {field}=false (Fig. 2)")
    p.add_argument("--device", help=TrainConfig.__dataclass_fields__["device"].metadata["help"])
    p.add_argument("--cuda", type=int, metavar="N", help="same as --device cuda:N (the upstream spelling)")
    p.add_argument("--no-amp", action="store_true", help="disable bf16 mixed precision on CUDA")
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
    flags = {f.name: getattr(args, f.name) for f in config_flag_fields()}
    flags.update({name: getattr(args, name) for name in MODEL_OPTIONS})
    flags["device"] = f"cuda:{args.cuda}" if args.cuda is not None else args.device
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
    parts = [Path(cfg.dataset).name, cfg.model]
    parts += [f"no-{m}" for m in ("structure", "visual", "text", "joint") if not getattr(cfg, f"use_{m}")]
    return runs_dir() / "-".join(parts)


def _cmd_train(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    run_dir = args.run_dir or _default_run_dir(cfg)
    results = train(cfg, run_dir, resume=args.resume, skip_splits=args.skip_split)
    test = results["test"]
    summary = {"run_dir": str(run_dir), "best_epoch": results["best_epoch"]}
    summary["test"] = _headline(test) if test is not None else "skipped"
    print(json.dumps(summary, indent=2))
    return 0


def _headline(result: dict) -> dict:
    r = EvaluationResult.from_dict(result)
    return {k: round(r.metric(k), 4) for k in HEADLINE_METRICS}


def _cmd_evaluate(args: argparse.Namespace) -> int:
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
        raise ConfigError(
            f"--split {args.split}: {run_dir} selected on the published valid.txt, so 'valid' is that split"
        )
    ctx.model.load_state_dict(load_checkpoint(run_dir / args.checkpoint, map_location=ctx.device)["model"])
    result = evaluate_model(ctx, args.split, branch=args.branch)
    print(result.summary())
    return 0


def _cmd_experiment(args: argparse.Namespace) -> int:
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
            publish_variant(results)
            line = {"variant": name, "seed": seed, "run_dir": results["run_dir"]}
            for split in ("test", "valid"):
                line[split] = _headline(results[split]) if results.get(split) else None
            print(json.dumps(line))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """Generate the synthetic graph, print its statistics, and rank its test set with a trivial scorer."""
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
