"""Named experiment variants (Table II rows and the Fig. 2 ablation) and a runner that reuses finished runs.

A variant is a model name plus configuration overrides. :func:`run_variant` trains it under
``runs_root/<profile>/<dataset>/<variant>-<hash>`` where ``hash`` is a digest of the full configuration, so the same
configuration is trained once and later calls (a notebook re-executed, the test suite, the Makefile) read the
finished ``results.json``; an interrupted run is resumed. Where ``runs/`` has no such run (a fresh clone), a
published result of exactly that configuration is reused (:func:`adopt_published`). The runner only trains: its
callers (``imvia experiment``, the notebooks) publish a finished run under ``results/<profile>/<dataset>/`` with
:func:`~imvia_core.training.publish.publish_variant`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from imvia_core.data.synthetic import SyntheticConfig
from imvia_core.errors import ConfigError
from imvia_core.evaluation.rank_files import RANK_FILE_NAME
from imvia_core.model.baselines import BASELINES
from imvia_core.paths import results_dir, runs_dir
from imvia_core.training.config import LATER_FIELDS, TrainConfig, profile_config
from imvia_core.training.publish import RANK_SUFFIX, load_results, publish_name
from imvia_core.training.trainer import train

__all__ = [
    "VARIANTS",
    "TABLE_VARIANTS",
    "ABLATION_VARIANTS",
    "SETTINGS_OF",
    "variant_config",
    "run_variant",
    "adopt_published",
    "run_variants",
    "run_seeds",
]

#: key of a variant entry: take the profile's settings of that model, then switch to the variant's model
SETTINGS_OF = "settings_of"

#: variant name -> overrides of the profile configuration
VARIANTS: dict[str, dict[str, Any]] = {
    "imvia": {"model": "imvia"},
    "imvia-no-structure": {"model": "imvia", "use_structure": False},
    "imvia-no-visual": {"model": "imvia", "use_visual": False},
    "imvia-no-text": {"model": "imvia", "use_text": False},
    "imvia-no-joint": {"model": "imvia", "use_joint": False},
    # the relation-aware gate of Eq. 7 where a profile averages the branches uniformly (the synthetic profiles)
    "imvia-gated": {"model": "imvia", "decision_fusion": "gated"},
    "tucker": {"model": "tucker"},
    # TuckER trained exactly like IMVIA's structure branch: the profile's IMVIA settings (epochs, batch, dim, lr and
    # its decay, dropouts, evaluation schedule), only the model changed
    "tucker-as-imvia": {"model": "tucker", SETTINGS_OF: "imvia"},
    # every other structural baseline under its own name (imvia_core.model.baselines.BASELINES)
    **{name: {"model": name} for name in BASELINES if name != "tucker"},
}
TABLE_VARIANTS = ("imvia", "tucker")
ABLATION_VARIANTS = ("imvia", "imvia-no-structure", "imvia-no-visual", "imvia-no-text", "imvia-no-joint")


def variant_config(variant: str, *, dataset: str, profile: str, **overrides: Any) -> TrainConfig:
    """The configuration of ``variant`` under ``profile`` for ``dataset``, with ``overrides`` applied last."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    entry = dict(VARIANTS[variant])
    settings_of = entry.pop(SETTINGS_OF, None)
    if settings_of is None:
        return profile_config(profile, dataset, **{**entry, **overrides})
    model = overrides.pop("model", None) or entry.pop("model")
    borrowed = profile_config(profile, dataset, **{**entry, **overrides, "model": settings_of})
    return TrainConfig.from_dict({**borrowed.to_dict(), "model": model}, source=f"variant {variant!r}")


def _digest(config: TrainConfig) -> str:
    """Eight hex digits of the configuration: the name of its cached run directory."""
    values = config.to_dict()
    values.pop("device", None)  # the same experiment on another device is the same experiment
    defaults = TrainConfig()
    for name in LATER_FIELDS:  # a default-valued later field leaves the digest of an older run unchanged
        if values.get(name) == getattr(defaults, name):
            values.pop(name, None)
    if config.dataset == "synthetic":  # the generator's settings are part of the experiment
        values["synthetic"] = asdict(SyntheticConfig())
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:8]


def run_variant(
    variant: str,
    *,
    dataset: str = "synthetic",
    profile: str = "ci",
    runs_root: str | Path | None = None,
    progress: bool = True,
    reuse_published: bool | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Train ``variant`` (or reuse its finished run) and return the finished run: its ``results.json`` content.

    :param reuse_published: where ``runs_root`` has no run of this configuration, take the published
        ``results/<profile>/<dataset>/<variant>.json`` (and its rank file) when it was trained with exactly this
        configuration (the same digest) instead of training again (:func:`adopt_published`). Default: on for every
        dataset but the synthetic graph, whose runs take seconds and whose committed results the tests check.

    The returned dict has three extra keys, what :func:`~imvia_core.training.publish.publish_variant` needs:
    ``"run_dir"``, ``"variant"`` and ``"profile"``. Nothing is published here.
    """

    config = variant_config(variant, dataset=dataset, profile=profile, **overrides)
    root = Path(runs_root) if runs_root is not None else runs_dir()
    run_dir = root / profile / Path(dataset).name / f"{variant}-{_digest(config)}"
    results_file = run_dir / "results.json"
    if reuse_published is None:
        reuse_published = dataset != "synthetic"
    if reuse_published and not results_file.is_file() and not (run_dir / "config.json").is_file():
        adopt_published(variant, config, profile=profile, run_dir=run_dir, progress=progress)
    if results_file.is_file():
        results = json.loads(results_file.read_text(encoding="utf-8"))
    else:
        results = train(config, run_dir, resume=(run_dir / "config.json").is_file(), progress=progress)
    return {**results, "run_dir": str(run_dir), "variant": variant, "profile": profile}


def adopt_published(variant: str, config: TrainConfig, *, profile: str, run_dir: Path, progress: bool = True) -> bool:
    """Copy the published result of ``variant`` into ``run_dir`` if it was trained with ``config``; say if it was.

    A fresh clone has the committed real-data results but not the ``runs/`` folder they came from; a notebook or
    ``imvia experiment`` asking for one of them again then reads it instead of training for an hour. A published
    file of another configuration (a grid-selected setting, an older profile) is left alone and the run trains.
    """
    stem = publish_name(variant, int(config.seed))
    published = results_dir() / profile / Path(config.dataset).name / f"{stem}.json"
    if not published.is_file():
        return False
    data = load_results(published)
    try:
        same = _digest(TrainConfig.from_dict(data["config"], source=str(published))) == _digest(config)
    except ConfigError:
        same = False
    if not same:
        return False
    run_dir.mkdir(parents=True, exist_ok=True)
    ranks = published.with_name(f"{stem}{RANK_SUFFIX}")
    if ranks.is_file():
        shutil.copyfile(ranks, run_dir / data.get("rank_file", RANK_FILE_NAME))
    shutil.copyfile(published, run_dir / "results.json.tmp")
    (run_dir / "results.json.tmp").replace(run_dir / "results.json")
    if progress:
        print(f"{variant}: the published {published} has this configuration; reused, not trained again")
    return True


def run_variants(variants, **kwargs: Any) -> dict[str, dict[str, Any]]:
    """:func:`run_variant` for each name in ``variants``; returns ``{variant: results}``."""
    return {v: run_variant(v, **kwargs) for v in variants}


def run_seeds(variant: str, seeds: Iterable[int], **kwargs: Any) -> dict[int, dict[str, Any]]:
    """:func:`run_variant` once per seed; returns ``{seed: results}``."""
    return {int(s): run_variant(variant, **{**kwargs, "seed": int(s)}) for s in seeds}
