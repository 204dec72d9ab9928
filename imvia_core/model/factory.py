"""Build a link-prediction model by name: ``imvia`` or one of the structural baselines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imvia_core.errors import ConfigError, InputError
from imvia_core.model.base import KGCModel
from imvia_core.model.baselines import BASELINES, BaselineConfig
from imvia_core.model.execution import ExecutionOptions
from imvia_core.model.imvia import IMVIA, IMVIAConfig
from imvia_core.types import MODALITIES, ModalityFeatures

__all__ = ["MODEL_LABELS", "MODEL_NAMES", "build_model"]


#: every name :func:`build_model` accepts
MODEL_NAMES: tuple[str, ...] = ("imvia",) + tuple(BASELINES)
#: model name -> its name in tables and reports
MODEL_LABELS: dict[str, str] = {"imvia": "IMVIA", **{name: cls.label for name, cls in BASELINES.items()}}

_FEATURE_KEYS = MODALITIES


def build_model(
    name: str,
    *,
    num_entities: int,
    num_relations_with_reciprocals: int,
    features: Mapping[str, ModalityFeatures | None] | None = None,
    config: Mapping[str, Any] | IMVIAConfig | BaselineConfig | None = None,
    execution: ExecutionOptions | None = None,
) -> KGCModel:
    """Create a model.

    :param name: one of :data:`MODEL_NAMES` (case-insensitive).
    :param num_entities: ``E``.
    :param num_relations_with_reciprocals: ``2R``.
    :param features: ``{"visual": ..., "text": ...}``, entries may be ``None`` or missing (IMVIA only; the
        structural baselines ignore features).
    :param config: hyperparameters: fields of :class:`~imvia_core.model.imvia.IMVIAConfig` for ``imvia``, of
        :class:`~imvia_core.model.baselines.BaselineConfig` otherwise; unknown keys raise ``ConfigError``. For
        ``imvia`` the fields of :class:`~imvia_core.model.execution.ExecutionOptions` are accepted too and go there.
        A typed configuration (:meth:`~imvia_core.training.config.TrainConfig.model_config`) is used as it is.
    :param execution: the execution options of ``imvia`` (with a typed ``config``; default: the fast kernels).
    """
    key = name.lower()
    if key not in MODEL_NAMES:
        raise ConfigError(f"model name: found {name!r}; expected one of {MODEL_NAMES}")
    if num_entities <= 0 or num_relations_with_reciprocals <= 0:
        raise InputError(
            f"model sizes: found {num_entities} entities and {num_relations_with_reciprocals} relations; expected "
            "positive numbers"
        )
    features = dict(features or {})
    unknown = sorted(set(features) - set(_FEATURE_KEYS))
    if unknown:
        raise InputError(f"model features: found modality key(s) {unknown}; expected keys among {_FEATURE_KEYS}")
    if isinstance(config, (IMVIAConfig, BaselineConfig)):
        typed = config
    else:
        values = dict(config or {})
        if key == "imvia":
            execution, values = ExecutionOptions.split(values)
        typed = IMVIAConfig.from_dict(values) if key == "imvia" else BaselineConfig.from_dict(values)
    if key == "imvia":
        if not isinstance(typed, IMVIAConfig):
            raise ConfigError(f"model imvia: found a {type(typed).__name__}; expected an IMVIAConfig")
        return IMVIA(
            num_entities=num_entities,
            num_relations_with_reciprocals=num_relations_with_reciprocals,
            visual=features.get("visual"),
            text=features.get("text"),
            config=typed,
            execution=execution,
        )
    if not isinstance(typed, BaselineConfig):
        raise ConfigError(f"model {key}: found a {type(typed).__name__}; expected a BaselineConfig")
    return BASELINES[key](
        num_entities=num_entities,
        num_relations_with_reciprocals=num_relations_with_reciprocals,
        config=typed,
    )
