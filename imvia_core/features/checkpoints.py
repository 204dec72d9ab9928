"""Load a CLIP checkpoint file into an open_clip model, including Microsoft's TinyCLIP key layout.

Microsoft's TinyCLIP training code wraps the two towers and the temperature in their own modules
(``CLIPBase._image_encoder``, ``._text_encoder``, ``._logit_scale``), so the state dicts it saves name every tensor
with one of those prefixes, sometimes with a ``module.`` from DistributedDataParallel in front of the whole key or
right after the tower prefix. open_clip's ``CLIP`` keeps the same tensors at the top level. The mapping applied here,
in this order, is:

1. a file holding ``{"state_dict": ...}`` (a training checkpoint) is unwrapped to that state dict;
2. a leading ``module.`` is removed from every key that has one;
3. ``_image_encoder.`` and ``_image_encoder.module.`` are removed: ``_image_encoder.visual.conv1.weight`` ->
   ``visual.conv1.weight`` (every image key then starts with ``visual.``);
4. ``_text_encoder.`` and ``_text_encoder.module.`` are removed: ``_text_encoder.token_embedding.weight`` ->
   ``token_embedding.weight``, ``_text_encoder.transformer.resblocks.0.attn.in_proj_weight`` ->
   ``transformer.resblocks.0.attn.in_proj_weight``, likewise ``positional_embedding``, ``ln_final.*`` and
   ``text_projection``;
5. ``_logit_scale.logit_scale`` and ``_logit_scale.module.logit_scale`` -> ``logit_scale`` (reshaped to the model's
   shape if one is a scalar and the other a 1-element vector);
6. ``_text_encoder.attn_mask`` (the causal mask, a buffer that open_clip rebuilds) and any key holding
   ``l0_module`` (the pruning masks of TinyCLIP's auto-compression training, unused at inference) are dropped.

Keys already in open_clip's layout (``visual.*``, ``transformer.*``, ``logit_scale``, ...) pass through unchanged,
so the same loader reads open_clip checkpoints. The result is loaded with ``strict=True``: every tensor of the
model must come from the file and every tensor of the file must be used; a mismatch is reported with the keys and
shapes involved (a shape mismatch usually means the checkpoint belongs to another model size).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from imvia_core.errors import InputError

__all__ = [
    "MICROSOFT_PREFIXES",
    "file_sha256",
    "is_microsoft_layout",
    "remap_tinyclip_state_dict",
    "read_state_dict",
    "load_clip_checkpoint",
]

#: tower prefixes of Microsoft's TinyCLIP state dicts.
MICROSOFT_PREFIXES = ("_image_encoder.", "_text_encoder.", "_logit_scale.")


def file_sha256(path: str | Path, *, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 of a file, lower-case hex."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def _strip_module(key: str) -> str:
    return key[len("module.") :] if key.startswith("module.") else key


def is_microsoft_layout(state_dict: Mapping[str, object]) -> bool:
    """Whether any key (after removing a leading ``module.``) starts with a TinyCLIP tower prefix."""
    return any(_strip_module(key).startswith(MICROSOFT_PREFIXES) for key in state_dict)


def remap_tinyclip_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the keys of a TinyCLIP (Microsoft layout) state dict to open_clip's ``CLIP`` layout.

    See the module docstring for the exact mapping. Keys in open_clip's layout are kept as they are.

    :raises InputError: when two keys of the input map to the same output key.
    """
    remapped: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for key, value in state_dict.items():
        new = _strip_module(key)
        if "l0_module" in new or new in ("_text_encoder.attn_mask", "_text_encoder.module.attn_mask"):
            continue
        for prefix in MICROSOFT_PREFIXES:
            if new.startswith(prefix):
                new = new[len(prefix) :]
                new = _strip_module(new)
                break
        if new in remapped:
            raise InputError(f"checkpoint keys {origin[new]!r} and {key!r} both map to {new!r}")
        remapped[new] = value
        origin[new] = key
    return remapped


def read_state_dict(path: str | Path, *, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Read the tensors of a checkpoint file (``.safetensors``, or a ``torch.save`` file such as ``.pt``).

    :param allow_pickle: allow arbitrary Python objects in a ``torch.save`` file (``weights_only=False``). Only for
        files from a trusted source: unpickling can run code.
    :return: the state dict, unwrapped from ``{"state_dict": ...}`` when the file is a training checkpoint.
    :raises InputError: when the file is missing or unreadable, or holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except Exception as err:  # safetensors raises its own error types
            raise InputError(f"cannot read safetensors checkpoint {path}: {err}") from err
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except Exception as err:
        hint = (
            "" if allow_pickle else " (if the file is from a trusted source, allow pickled objects: --trust-checkpoint)"
        )
        raise InputError(f"cannot read checkpoint {path}: {err}{hint}") from err
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise InputError(f"checkpoint {path} holds {type(loaded).__name__}; expected a state dict of tensors")
    return dict(loaded)


def _describe_mismatch(path: Path, model_name: str, model_sd: Mapping[str, torch.Tensor], sd: Mapping) -> str | None:
    missing = [k for k in model_sd if k not in sd]
    unexpected = [k for k in sd if k not in model_sd]
    wrong_shape = [
        f"{k}: file {tuple(sd[k].shape)}, model {tuple(model_sd[k].shape)}"
        for k in model_sd
        if k in sd and tuple(sd[k].shape) != tuple(model_sd[k].shape)
    ]
    if not (missing or unexpected or wrong_shape):
        return None
    parts = []
    if wrong_shape:
        parts.append(f"{len(wrong_shape)} tensors of another shape ({'; '.join(wrong_shape[:3])})")
    if missing:
        parts.append(f"{len(missing)} tensors missing ({', '.join(missing[:5])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected tensors ({', '.join(unexpected[:5])})")
    return (
        f"checkpoint {path} does not fit model {model_name}: {'; '.join(parts)}. "
        "Is it a checkpoint of this model (--model)?"
    )


def load_clip_checkpoint(
    model: nn.Module, path: str | Path, *, model_name: str = "the model", allow_pickle: bool = False
) -> str:
    """Load a checkpoint file (TinyCLIP or open_clip layout) into ``model`` with ``strict=True``.

    :param model: an open_clip ``CLIP`` model.
    :param path: the checkpoint.
    :param model_name: used in error messages.
    :param allow_pickle: see :func:`read_state_dict`.
    :return: SHA-256 of the file, the ``weights`` identity that outputs record.
    :raises InputError: when the file cannot be read or does not fit the model.
    """
    path = Path(path)
    state_dict = remap_tinyclip_state_dict(read_state_dict(path, allow_pickle=allow_pickle))
    model_sd = model.state_dict()
    for key in ("logit_scale", "logit_bias"):
        if key in state_dict and key in model_sd and state_dict[key].numel() == model_sd[key].numel():
            state_dict[key] = state_dict[key].reshape(model_sd[key].shape)
    problem = _describe_mismatch(path, model_name, model_sd, state_dict)
    if problem:
        raise InputError(problem)
    model.load_state_dict(state_dict, strict=True)
    return file_sha256(path)
