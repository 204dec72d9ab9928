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


def test_model_options_are_set_by_name_and_stored_as_before(tmp_path) -> None:
    from imvia_core.errors import ConfigError
    from imvia_core.training.config import MODEL_OPTIONS, profile_config
    from imvia_core.training.experiments import _digest

    plain = profile_config("ci", "synthetic")
    by_name = profile_config("ci", "synthetic", view_temperature=0.5, fast_tucker=False)
    legacy = profile_config("ci", "synthetic", model_options={"view_temperature": 0.5, "fast_tucker": False})
    assert by_name.model_options == legacy.model_options  # typed and nested: ModelOptions
    assert by_name.model_options.set_values() == {"view_temperature": 0.5, "fast_tucker": False}
    assert by_name.to_dict() == legacy.to_dict() and _digest(by_name) == _digest(legacy)
    assert (by_name.view_temperature, by_name.fast_tucker, plain.view_temperature) == (0.5, False, 0.1)
    # a model option at its default is the experiment without it: the same stored form and digest
    assert _digest(profile_config("ci", "synthetic", view_temperature=0.1)) == _digest(plain)
    # by name over the legacy dict, one option at a time
    mixed = profile_config("ci", "synthetic", model_options={"view_temperature": 0.5, "gamma": 3.0}, gamma=12.0)
    assert mixed.model_options.set_values() == {"view_temperature": 0.5}
    with pytest.raises(ConfigError, match="model_options"):
        profile_config("ci", "synthetic", model="tucker", view_temperature=0.5)  # not a field of BaselineConfig
    assert {"view_temperature", "club_hidden_dim", "gamma", "fast_tucker"} <= set(MODEL_OPTIONS)
    assert all(option.help for option in MODEL_OPTIONS.values())
    path = tmp_path / "run.yaml"
    path.write_text("club_hidden_dim: 64\nlr: 0.01\n")
    assert TrainConfig.from_file(path).model_options.set_values() == {"club_hidden_dim": 64}


def test_model_option_flags_come_from_the_model_configuration() -> None:
    from imvia_core.training.cli import model_option_help
    from imvia_core.training.config import MODEL_OPTIONS

    parser = _train_parser()
    args = parser.parse_args(["train", "--profile", "ci", "--view-temperature", "0.5", "--no-fast-tucker"])
    cfg = config_from_args(args)
    assert cfg.model_options.set_values() == {"view_temperature": 0.5, "fast_tucker": False}
    model, execution = cfg.model_config()
    assert model.view_temperature == 0.5 and execution.fast_tucker is False
    assert config_from_args(parser.parse_args(["train", "--profile", "ci"])).model_options.set_values() == {}
    train = parser._subparsers._group_actions[0].choices["train"]
    actions = {a.dest: a for a in train._actions}
    assert actions["club_hidden_dim"].type is int and actions["view_temperature"].type is float
    assert actions["view_temperature"].help == model_option_help(MODEL_OPTIONS["view_temperature"])
    assert "temperature of the view softmax" in actions["view_temperature"].help


def test_a_model_option_with_choices_declares_them_once(capsys: pytest.CaptureFixture[str]) -> None:
    from imvia_core.errors import ConfigError
    from imvia_core.model.fusion import VIEW_MODES
    from imvia_core.training.config import MODEL_OPTIONS, profile_config

    assert MODEL_OPTIONS["view_mode"].choices == VIEW_MODES
    parser = _train_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    assert tuple({a.dest: a for a in train._actions}["view_mode"].choices) == VIEW_MODES
    assert config_from_args(parser.parse_args(["train", "--view-mode", "experts"])).view_mode == "experts"
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--view-mode", "pooled"])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="view_mode"):  # a configuration file or profile is checked the same way
        profile_config("ci", "synthetic", view_mode="pooled")


def test_model_options_are_a_typed_nested_dataclass_stored_as_the_options_set(tmp_path) -> None:
    import dataclasses
    import json

    from imvia_core.errors import ConfigError
    from imvia_core.training.config import MODEL_OPTIONS, ModelOptions, profile_config

    assert [f.name for f in dataclasses.fields(ModelOptions)] == list(MODEL_OPTIONS)
    cfg = profile_config("ci", "synthetic", view_temperature=0.25, expert_dim=16)
    assert isinstance(cfg.model_options, ModelOptions) and cfg.model_options.view_temperature == 0.25
    assert cfg.to_dict()["model_options"] == {"view_temperature": 0.25, "expert_dim": 16}
    cfg.save(tmp_path / "config.json")
    stored = json.loads((tmp_path / "config.json").read_text())["model_options"]
    assert stored == {"view_temperature": 0.25, "expert_dim": 16}
    assert TrainConfig.from_file(tmp_path / "config.json").model_options == cfg.model_options
    # a legacy file's explicit entry is kept even at its default value: the same stored form, the same digest
    legacy = TrainConfig.from_dict(
        {**profile_config("ci", "synthetic").to_dict(), "model_options": {"view_mode": "auto"}}
    )
    assert legacy.to_dict()["model_options"] == {"view_mode": "auto"}
    with pytest.raises(ConfigError, match="view_temperature must be a finite number"):
        profile_config("ci", "synthetic", view_temperature="hot")
    with pytest.raises(ConfigError, match="expert_dim must be an integer"):
        profile_config("ci", "synthetic", expert_dim=1.5)
    with pytest.raises(ConfigError, match="model_options must be a mapping"):
        TrainConfig(model_options=[1, 2])
