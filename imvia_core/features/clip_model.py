"""Build an open_clip model (TinyCLIP by default) with its weights, its image preprocessing and its tokenizer.

Where the weights come from (``weights`` argument, ``--pretrained`` on the command line):

* ``None`` or ``"random"``: the architecture is built with random weights from ``seed``. Features are then not
  meaningful (useful for tests and benchmarks only); a :class:`RandomWeightsWarning` is raised and every output
  records ``weights="random"``.
* a local file (``.pt``/``.pth``/``.bin``/``.safetensors``): loaded with :func:`~imvia_core.features.checkpoints.
  load_clip_checkpoint`, which reads Microsoft's TinyCLIP key layout as well as open_clip's, ``strict=True``;
  outputs record the file's SHA-256. Microsoft's checkpoints (for example ``TinyCLIP-ViT-8M-16-Text-3M-YFCC15M.pt``
  from the ``wkcn/TinyCLIP-model-zoo`` releases) are used this way.
* any other string: an open_clip pretrained tag (``laion2b_s34b_b79k`` for ``ViT-B-32``), downloaded by open_clip
  when online; outputs record the tag.
* a model name ``hf-hub:org/repo`` (or ``local-dir:/path``) brings its own configuration and weights; ``weights``
  must then be left out and outputs record the name.

The model is built on the CPU in float32 (so random weights do not depend on the device), then moved to ``device``;
``precision="fp16"``/``"bf16"`` runs the towers under ``torch.autocast``.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from imvia_core.errors import ConfigError, InputError
from imvia_core.features.checkpoints import load_clip_checkpoint
from imvia_core.features.tinyclip import DEFAULT_MODEL, TINYCLIP_CONFIGS, register_tinyclip_configs

__all__ = ["RandomWeightsWarning", "ClipModel", "load_clip", "PRECISIONS", "resolve_device"]


#: accepted ``precision`` values and the autocast dtype each uses (``None``: no autocast).
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}

_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


class RandomWeightsWarning(UserWarning):
    """The encoder has random weights: its features carry no meaning."""


@dataclass(eq=False)
class ClipModel:
    """An open_clip model ready to encode images and texts.

    :param model: the open_clip model (``eval`` mode, on ``device``).
    :param preprocess: PIL image -> tensor ``(3, H, W)``, the model's evaluation transform.
    :param tokenizer: list of texts -> ``(n, context_length)`` token ids.
    :param model_name: open_clip model name (``TinyCLIP-ViT-8M-16-Text-3M``, ``hf-hub:...``).
    :param weights: weights identity: SHA-256 of the checkpoint file, ``"random"``, the pretrained tag, or the
        ``hf-hub:`` name.
    :param random_init: whether the weights are random.
    :param seed: seed of the random weights (``None`` when loaded).
    :param device: where the model runs.
    :param precision: ``fp32``, ``fp16`` or ``bf16`` (autocast).
    """

    model: nn.Module
    preprocess: Callable
    tokenizer: Callable
    model_name: str
    weights: str
    random_init: bool
    seed: int | None
    device: torch.device
    precision: str = "fp32"
    extra: dict = field(default_factory=dict)

    @property
    def embed_dim(self) -> int:
        """Dimension of the joint image-text embedding (512 for TinyCLIP)."""
        proj = getattr(self.model, "text_projection", None)
        if isinstance(proj, torch.Tensor):
            return int(proj.shape[-1])
        if isinstance(proj, nn.Linear):
            return int(proj.out_features)
        return int(self.model.visual.output_dim)

    @property
    def image_size(self) -> tuple[int, int]:
        size = getattr(self.model.visual, "image_size", 224)
        return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))

    def autocast(self) -> contextlib.AbstractContextManager:
        """Context that runs the towers at :attr:`precision`."""
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def settings(self) -> dict:
        """What, besides the weights, changes the features: used in cache keys."""
        return {"model": self.model_name, "weights": self.weights, "seed": self.seed, "precision": self.precision}


def resolve_device(device: str | torch.device) -> torch.device:
    """Parse ``device`` and check that it exists here.

    :raises ConfigError: for an unknown device or a CUDA device on a machine without one.
    """
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"unknown device {device!r}: {err}; expected 'cpu', 'cuda', 'cuda:0', 'mps'") from err
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but CUDA is not available here; use --device cpu")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r} requested but MPS is not available here")
    return resolved


class _DropOpenClipRandomNotice(logging.Filter):
    """open_clip logs 'model initialized randomly' even when this module then loads a checkpoint."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No pretrained weights loaded")


@contextlib.contextmanager
def _quiet_open_clip() -> Iterator[None]:
    root = logging.getLogger()
    notice = _DropOpenClipRandomNotice()
    root.addFilter(notice)
    try:
        yield
    finally:
        root.removeFilter(notice)


def _create(model_name: str, pretrained: str | None, cache_dir: str | None) -> tuple[nn.Module, Callable]:
    import open_clip  # loaded only to extract features: importing it takes seconds

    try:
        with _quiet_open_clip():
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=pretrained, device="cpu", precision="fp32", cache_dir=cache_dir
            )
    except (RuntimeError, OSError, ValueError) as err:
        source = f"pretrained {pretrained!r}" if pretrained else "its configuration"
        raise InputError(
            f"could not build open_clip model {model_name!r} with {source}: {err}. Without network access, pass a "
            "local checkpoint file with --pretrained."
        ) from err
    return model, preprocess


def _looks_like_path(value: str) -> bool:
    return value.endswith(_CHECKPOINT_SUFFIXES) or "/" in value or "\\" in value or value.startswith(".")


def load_clip(
    model_name: str = DEFAULT_MODEL,
    *,
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    seed: int = 0,
    cache_dir: str | None = None,
    allow_pickle: bool = False,
) -> ClipModel:
    """Build an open_clip model with its weights (see the module docstring for ``weights``).

    :param model_name: any open_clip model name; the TinyCLIP names are registered first.
    :param weights: ``None``/``"random"``, a checkpoint file, or an open_clip pretrained tag.
    :param device: where to run (``cpu``, ``cuda:0``, ...).
    :param precision: ``fp32``, ``fp16`` or ``bf16`` (autocast; fp16 only on GPUs).
    :param seed: seed of the random weights when ``weights`` is ``None``.
    :param cache_dir: open_clip download cache (tags and ``hf-hub:`` only).
    :param allow_pickle: allow pickled Python objects in a ``torch.save`` checkpoint (trusted files only).
    :raises ConfigError: for an unknown model name, precision or device.
    :raises InputError: for a checkpoint that is missing, unreadable or does not fit the model, or a failed download.
    """
    import open_clip  # loaded only to extract features: importing it takes seconds

    register_tinyclip_configs()
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; expected one of {sorted(PRECISIONS)}")
    target = resolve_device(device)
    weights = None if weights is None or str(weights) in ("", "random", "none") else str(weights)
    has_schema = model_name.startswith(("hf-hub:", "local-dir:"))
    if not has_schema and model_name.replace("/", "-") not in open_clip.list_models():
        raise ConfigError(
            f"unknown open_clip model {model_name!r}; TinyCLIP models: {', '.join(TINYCLIP_CONFIGS)}; "
            "any name of open_clip.list_models() or 'hf-hub:org/repo' also works"
        )

    random_init = False
    used_seed: int | None = None
    if has_schema:
        if weights is not None:
            raise ConfigError(
                f"model {model_name!r} brings its own weights; leave out --pretrained ({weights!r}) "
                "with hf-hub:/local-dir: names"
            )
        model, preprocess = _create(model_name, None, cache_dir)
        weights_id = model_name
    elif weights is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model, preprocess = _create(model_name, None, cache_dir)
        weights_id, random_init, used_seed = "random", True, seed
        message = (
            f"{model_name} has RANDOM weights (seed {seed}): its features are not meaningful. "
            "Pass a checkpoint file or pretrained tag (--pretrained) for real features."
        )
        warnings.warn(message, RandomWeightsWarning, stacklevel=2)
    elif Path(weights).expanduser().is_file():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model, preprocess = _create(model_name, None, cache_dir)
        weights_id = load_clip_checkpoint(
            model, Path(weights).expanduser(), model_name=model_name, allow_pickle=allow_pickle
        )
    elif _looks_like_path(weights):
        raise InputError(f"checkpoint file {weights} does not exist")
    else:
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        if weights not in tags:
            known = ", ".join(tags) if tags else "none (pass a checkpoint file instead)"
            raise ConfigError(
                f"{weights!r} is neither a file nor a pretrained tag of {model_name}; known tags: {known}"
            )
        model, preprocess = _create(model_name, weights, cache_dir)
        weights_id = weights

    tokenizer = open_clip.get_tokenizer(model_name, cache_dir=cache_dir)
    model = model.to(target).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return ClipModel(
        model=model,
        preprocess=preprocess,
        tokenizer=tokenizer,
        model_name=model_name,
        weights=weights_id,
        random_init=random_init,
        seed=used_seed,
        device=target,
        precision=precision,
    )
