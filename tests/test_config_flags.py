"""``imvia train``'s flags come from the fields of TrainConfig: one flag per field, its doc as help, its choices."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from imvia_core.model.joint import DECISION_FUSION_MODES
from imvia_core.training.cli import add_config_flags, config_flag_fields, config_from_args, register
from imvia_core.training.config import TrainConfig


def _train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imvia")
    register(parser.add_subparsers(dest="command"))
    return parser


def test_every_field_is_documented_and_most_are_flags() -> None:
    documented = [f for f in fields(TrainConfig) if f.name != "model_options"]
    assert all(f.metadata.get("help") for f in documented)
    assert {f.name for f in config_flag_fields()} >= {"lr", "mu", "dim", "decision_fusion", "weight_decay"}


def test_help_and_choices_come_from_the_field() -> None:
    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    actions = {a.dest: a for a in parser._actions}
    field = TrainConfig.__dataclass_fields__["decision_fusion"]
    assert actions["decision_fusion"].help == field.metadata["help"]
    assert tuple(actions["decision_fusion"].choices) == DECISION_FUSION_MODES
    assert actions["hidden_dropout2"].type is float and actions["epochs"].type is int


def test_flags_set_their_fields_over_the_profile() -> None:
    args = _train_parser().parse_args(
        ["train", "--profile", "ci", "--dim", "12", "--hidden-dropout1", "0.25", "--decision-fusion", "gated"]
        + ["--no-text", "--cuda", "1"]
    )
    cfg = config_from_args(args)
    assert (cfg.dim, cfg.hidden_dropout1, cfg.decision_fusion, cfg.use_text) == (12, 0.25, "gated", False)
    assert cfg.device == "cuda:1" and cfg.lr == 2e-2  # the ci profile's learning rate stays


def test_a_bad_choice_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _train_parser().parse_args(["train", "--batch-order", "sideways"])
    assert "invalid choice" in capsys.readouterr().err


def test_the_model_configuration_is_typed_and_named_once() -> None:
    from imvia_core.errors import ConfigError
    from imvia_core.model import BaselineConfig, IMVIAConfig
    from imvia_core.training.config import MODEL_FIELDS, profile_config

    cfg = profile_config("ci", "synthetic", num_views=4, model_options={"view_temperature": 0.5, "fast_tucker": False})
    model, execution = cfg.model_config()
    assert isinstance(model, IMVIAConfig) and model.num_experts == 4 and model.view_temperature == 0.5
    assert all(getattr(model, target) == getattr(cfg, name) for name, target in MODEL_FIELDS.items())
    assert execution.fast_tucker is False and execution.fused_scoring_loss is True
    baseline, _ = profile_config("ci", "synthetic", model="tucker").model_config()
    assert isinstance(baseline, BaselineConfig) and baseline.dim == 32 and baseline.hidden_dropout2 == 0.1
    with pytest.raises(ConfigError, match="model_options.*dimm"):
        profile_config("ci", "synthetic", model_options={"dimm": 3})
