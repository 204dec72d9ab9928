"""TinyCLIP through open_clip: registered configurations, Microsoft checkpoint layout, weight sources."""

from __future__ import annotations

import pytest
import torch

open_clip = pytest.importorskip("open_clip")

from imvia_core.errors import ConfigError, InputError  # noqa: E402
from imvia_core.features.checkpoints import (  # noqa: E402
    file_sha256,
    is_microsoft_layout,
    load_clip_checkpoint,
    remap_tinyclip_state_dict,
)
from imvia_core.features.clip_model import RandomWeightsWarning, load_clip  # noqa: E402
from imvia_core.features.tinyclip import TINYCLIP_CONFIGS, register_tinyclip_configs  # noqa: E402

torch.set_num_threads(2)

SMALL = "TinyCLIP-ViT-8M-16-Text-3M"


@pytest.fixture(scope="module")
def source_model():
    """Random TinyCLIP-8M weights (seed 11) that the checkpoint tests save and load back."""
    with pytest.warns(RandomWeightsWarning):
        return load_clip(SMALL, seed=11)


def _block_params(width: int) -> int:
    # ln_1, attention (in_proj 3w x w + 3w, out_proj w x w + w), ln_2, MLP (w -> 4w -> w)
    return 12 * width * width + 13 * width


def _expected_counts(cfg: dict) -> tuple[int, int]:
    """Parameters of the image tower and of the text tower without its token-embedding table, from the config."""
    v, t, d = cfg["vision_cfg"], cfg["text_cfg"], cfg["embed_dim"]
    w, p, size = v["width"], v["patch_size"], v["image_size"]
    vision = 3 * p * p * w + w + ((size // p) ** 2 + 1) * w + 4 * w + v["layers"] * _block_params(w) + w * d
    tw = t["width"]
    text = t["context_length"] * tw + t["layers"] * _block_params(tw) + 2 * tw + tw * d
    return vision, text


def _counts(model: torch.nn.Module) -> tuple[int, int]:
    vision = sum(p.numel() for p in model.visual.parameters())
    text = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("visual.") and n != "logit_scale")
    return vision, text - model.token_embedding.weight.numel()


@pytest.mark.parametrize(
    ("name", "vision_millions", "text_millions"),
    [("TinyCLIP-ViT-8M-16-Text-3M", 8, 3), ("TinyCLIP-ViT-39M-16-Text-19M", 39, 19)],
)
def test_registered_config_builds_with_published_sizes(name: str, vision_millions: int, text_millions: int) -> None:
    register_tinyclip_configs()
    assert name in open_clip.list_models()
    model = open_clip.create_model(name, pretrained=None)
    vision, text = _counts(model)
    assert (vision, text) == _expected_counts(TINYCLIP_CONFIGS[name])
    # the sizes in the names: 8.3M + 2.5M and 38.6M + 19.2M
    assert round(vision / 1e6) == vision_millions
    assert round(text / 1e6) == text_millions
    assert model.visual.proj.shape[1] == 512 and model.text_projection.shape[1] == 512
    assert model.visual.transformer.resblocks[0].attn.num_heads == TINYCLIP_CONFIGS[name]["vision_cfg"]["width"] // 64


def test_registration_is_idempotent_and_survives_rescan() -> None:
    register_tinyclip_configs()
    assert register_tinyclip_configs() == []
    open_clip.factory._rescan_model_configs()
    assert all(name in open_clip.list_models() for name in TINYCLIP_CONFIGS)


def test_small_model_embeds_images_and_texts_in_512_dims(source_model) -> None:
    clip = source_model
    assert clip.random_init and clip.weights == "random" and clip.embed_dim == 512
    with torch.no_grad():
        image = clip.model.encode_image(torch.randn(1, 3, 224, 224))
        text = clip.model.encode_text(clip.tokenizer(["a photo of a cat"]))
    assert image.shape == (1, 512) and text.shape == (1, 512)


def test_random_weights_follow_the_seed(source_model) -> None:
    with pytest.warns(RandomWeightsWarning, match="RANDOM weights"):
        again = load_clip(SMALL, seed=11).model.state_dict()
    reference = source_model.model.state_dict()
    assert all(torch.equal(again[k], reference[k]) for k in reference)
    other = open_clip.create_model(SMALL, pretrained=None).state_dict()  # global RNG, not seed 11
    assert not torch.equal(other["visual.conv1.weight"], reference["visual.conv1.weight"])


def _microsoft_layout(state_dict: dict[str, torch.Tensor], *, ddp: str) -> dict[str, torch.Tensor]:
    """Rename open_clip keys into the layout of Microsoft's TinyCLIP checkpoints (see checkpoints.py)."""
    inner = "module." if ddp == "inner" else ""
    outer = "module." if ddp == "outer" else ""
    renamed = {}
    for key, value in state_dict.items():
        if key.startswith("visual."):
            new = f"_image_encoder.{inner}{key}"
        elif key == "logit_scale":
            new = f"_logit_scale.{inner}logit_scale"
        else:
            new = f"_text_encoder.{inner}{key}"
        renamed[outer + new] = value.clone()
    return renamed


@pytest.fixture(scope="module")
def blank_model():
    """An open_clip TinyCLIP-8M that tests overwrite with checkpoints."""
    register_tinyclip_configs()
    return open_clip.create_model(SMALL, pretrained=None)


@pytest.mark.parametrize("ddp", ["none", "outer", "inner"])
def test_microsoft_checkpoint_loads_strictly(tmp_path, source_model, blank_model, ddp: str) -> None:
    reference = source_model.model.state_dict()
    microsoft = _microsoft_layout(reference, ddp=ddp)
    assert is_microsoft_layout(microsoft)
    assert all(k.split(".")[0] in ("_image_encoder", "_text_encoder", "_logit_scale", "module") for k in microsoft)
    path = tmp_path / "TinyCLIP-ViT-8M-16-Text-3M-YFCC15M.pt"
    torch.save({"epoch": 25, "state_dict": microsoft}, path)

    # the remapped dict loads into a fresh open_clip model with strict=True
    result = blank_model.load_state_dict(remap_tinyclip_state_dict(microsoft), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(blank_model.visual.conv1.weight, reference["visual.conv1.weight"])

    clip = load_clip(SMALL, weights=str(path), seed=99)
    loaded = clip.model.state_dict()
    assert set(loaded) == set(reference)
    assert all(torch.equal(loaded[k], reference[k]) for k in reference)
    assert clip.weights == file_sha256(path) and len(clip.weights) == 64
    assert not clip.random_init and clip.seed is None
    tokens = clip.tokenizer(["Linda Darnell", "My Darling Clementine"])
    with torch.no_grad():
        assert torch.equal(clip.model.encode_text(tokens), source_model.model.encode_text(tokens))


def test_open_clip_layout_checkpoint_loads_too(tmp_path, source_model, blank_model) -> None:
    path = tmp_path / "plain.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in source_model.model.state_dict().items()}, str(path))
    with torch.no_grad():
        blank_model.visual.proj.zero_()
    assert load_clip_checkpoint(blank_model, path) == file_sha256(path)
    assert torch.equal(blank_model.visual.proj, source_model.model.visual.proj)


def test_checkpoint_that_does_not_fit_is_reported(tmp_path, source_model, blank_model) -> None:
    microsoft = _microsoft_layout(source_model.model.state_dict(), ddp="none")
    missing = dict(microsoft)
    del missing["_text_encoder.ln_final.weight"]
    torch.save(missing, tmp_path / "missing.pt")
    model = blank_model
    with pytest.raises(InputError, match=r"missing \(ln_final.weight\)"):
        load_clip_checkpoint(model, tmp_path / "missing.pt", model_name=SMALL)

    wrong = dict(microsoft)
    wrong["_image_encoder.visual.conv1.weight"] = torch.zeros(512, 3, 16, 16)
    wrong["_text_encoder.extra_head.weight"] = torch.zeros(2)
    torch.save(wrong, tmp_path / "wrong.pt")
    with pytest.raises(InputError) as info:
        load_clip_checkpoint(model, tmp_path / "wrong.pt", model_name=SMALL)
    message = str(info.value)
    assert "visual.conv1.weight: file (512, 3, 16, 16), model (256, 3, 16, 16)" in message
    assert "extra_head.weight" in message and "--model" in message

    clash = {"module._logit_scale.logit_scale": torch.tensor(1.0), "_logit_scale.module.logit_scale": torch.tensor(2.0)}
    with pytest.raises(InputError, match="both map to 'logit_scale'"):
        remap_tinyclip_state_dict(clash)


def test_missing_checkpoint_and_unknown_names_are_clear_errors(tmp_path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_clip(SMALL, weights=str(tmp_path / "nope.pt"))
    with pytest.raises(ConfigError, match="unknown open_clip model"):
        load_clip("TinyCLIP-ViT-1M-Imaginary")
    with pytest.raises(ConfigError, match="neither a file nor a pretrained tag"):
        load_clip(SMALL, weights="yfcc15m")
    with pytest.raises(ConfigError, match="precision"):
        load_clip(SMALL, precision="fp8")


def test_pretrained_tag_and_hf_hub_pass_through_to_open_clip(monkeypatch) -> None:
    calls: list[tuple[str, object]] = []
    real_create = open_clip.create_model_and_transforms

    def fake_create(model_name, pretrained=None, **kwargs):
        calls.append((model_name, pretrained))
        return real_create(SMALL, pretrained=None, device="cpu")

    monkeypatch.setattr(open_clip, "create_model_and_transforms", fake_create)
    monkeypatch.setattr(open_clip, "list_pretrained_tags_by_model", lambda name: ["laion_fake_tag"])
    clip = load_clip(SMALL, weights="laion_fake_tag")
    assert calls[-1] == (SMALL, "laion_fake_tag")
    assert clip.weights == "laion_fake_tag" and not clip.random_init

    tokenizer_names: list[str] = []
    real_tokenizer = open_clip.get_tokenizer

    def fake_tokenizer(name, **kwargs):
        tokenizer_names.append(name)
        return real_tokenizer(SMALL)

    monkeypatch.setattr(open_clip, "get_tokenizer", fake_tokenizer)
    clip = load_clip("hf-hub:wkcn/TinyCLIP-ViT-8M-16-Text-3M-YFCC15M")
    assert calls[-1] == ("hf-hub:wkcn/TinyCLIP-ViT-8M-16-Text-3M-YFCC15M", None)
    assert tokenizer_names[-1] == "hf-hub:wkcn/TinyCLIP-ViT-8M-16-Text-3M-YFCC15M"
    assert clip.weights == "hf-hub:wkcn/TinyCLIP-ViT-8M-16-Text-3M-YFCC15M" and not clip.random_init
    with pytest.raises(ConfigError, match="brings its own weights"):
        load_clip("hf-hub:org/repo", weights="laion_fake_tag")
