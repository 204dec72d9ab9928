"""TinyCLIP model configurations, registered with open_clip.

The IMVIA paper encodes every image and text view with TinyCLIP (Wu et al., "TinyCLIP: CLIP Distillation via Affinity
Mimicking and Weight Inheritance", ICCV 2023). Microsoft released TinyCLIP as a fork of open_clip whose model
configurations are not part of open_clip 3.3.0; this module adds them to open_clip's registry, so that
``open_clip.create_model("TinyCLIP-ViT-8M-16-Text-3M")`` builds the architecture of the released checkpoints.

The values are those of the release's ``src/open_clip/model_configs/*.json`` (Microsoft ``Cream/TinyCLIP``): plain
ViT image towers with 64-wide attention heads and GELU, a causal text transformer pooled at the end-of-text token,
a 512-d joint embedding, 224 px images with patch 16 (or 32) and 77-token contexts with the CLIP BPE vocabulary.

========================================  =================================  ================================
name                                      image tower                        text tower
========================================  =================================  ================================
``TinyCLIP-ViT-8M-16-Text-3M``            width 256, 10 layers, patch 16     width 256, 4 heads, 3 layers
``TinyCLIP-ViT-39M-16-Text-19M``          width 512, 12 layers, patch 16     width 512, 8 heads, 6 layers
``TinyCLIP-ViT-61M-32-Text-29M``          width 640, 12 layers, patch 32     width 512, 8 heads, 9 layers
``TinyCLIP-40M``                          width 512, 12 layers, patch 32     width 512, 8 heads, 6 layers
========================================  =================================  ================================

Names are those of the release's configuration files. The sizes in a name match the parameter counts of the image
tower and of the text tower without its token-embedding table (49408 x width): 8.3M + 2.5M and 38.6M + 19.2M.
"""

from __future__ import annotations

import copy
import importlib.abc
import importlib.machinery
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = [
    "TINYCLIP_CONFIGS",
    "DEFAULT_MODEL",
    "register_tinyclip_configs",
    "register_on_open_clip_import",
    "is_registered",
]

#: the model the paper's feature extraction uses by default in this project (the smallest TinyCLIP).
DEFAULT_MODEL = "TinyCLIP-ViT-8M-16-Text-3M"


def _config(*, vision_width: int, vision_layers: int, patch: int, text_width: int, heads: int, layers: int) -> dict:
    return {
        "embed_dim": 512,
        "vision_cfg": {"image_size": 224, "layers": vision_layers, "width": vision_width, "patch_size": patch},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": text_width, "heads": heads, "layers": layers},
    }


#: open_clip model configurations of Microsoft's TinyCLIP release (manual weight inheritance, ViT towers).
TINYCLIP_CONFIGS: dict[str, dict[str, Any]] = {
    "TinyCLIP-ViT-8M-16-Text-3M": _config(
        vision_width=256, vision_layers=10, patch=16, text_width=256, heads=4, layers=3
    ),
    "TinyCLIP-ViT-39M-16-Text-19M": _config(
        vision_width=512, vision_layers=12, patch=16, text_width=512, heads=8, layers=6
    ),
    "TinyCLIP-ViT-61M-32-Text-29M": _config(
        vision_width=640, vision_layers=12, patch=32, text_width=512, heads=8, layers=9
    ),
    "TinyCLIP-40M": _config(vision_width=512, vision_layers=12, patch=32, text_width=512, heads=8, layers=6),
}


def is_registered(name: str) -> bool:
    """Whether open_clip knows model ``name`` (built in or registered)."""
    import open_clip  # loaded only to extract features: importing it takes seconds

    return name in open_clip.list_models()


def register_tinyclip_configs() -> list[str]:
    """Add the TinyCLIP configurations to open_clip's model registry (idempotent).

    open_clip 3.3.0 keeps its registry in ``open_clip.factory._MODEL_CONFIGS`` (name -> config dict), filled from
    JSON files by ``add_model_config(path)``; every rescan keeps entries already there. The configurations are
    inserted into that dict; if a later open_clip no longer has it, they are written as JSON files to a temporary
    folder and registered through the public ``open_clip.add_model_config``.

    :return: the names that were added (empty when all were registered already).
    """
    import open_clip  # loaded only to extract features: importing it takes seconds
    from open_clip import factory

    missing = [name for name in TINYCLIP_CONFIGS if name not in open_clip.list_models()]
    if not missing:
        return []
    registry = getattr(factory, "_MODEL_CONFIGS", None)
    if isinstance(registry, dict):
        for name in missing:
            registry[name] = copy.deepcopy(TINYCLIP_CONFIGS[name])
    else:  # pragma: no cover - only for open_clip versions without the private registry
        folder = Path(tempfile.mkdtemp(prefix="imvia-tinyclip-configs-"))
        for name in missing:
            (folder / f"{name}.json").write_text(json.dumps(TINYCLIP_CONFIGS[name]), encoding="utf-8")
        open_clip.add_model_config(folder)
    return missing


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loader of ``open_clip`` so that the configurations are added once it ran."""

    def find_spec(self, fullname, path, target=None):  # noqa: ANN001 - the import system's signature
        if fullname != "open_clip":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _RegisteringLoader(spec.loader)
                return spec
        return None


class _RegisteringLoader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader) -> None:
        self.inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec):  # noqa: ANN201
        return self.inner.create_module(spec)

    def exec_module(self, module) -> None:  # noqa: ANN001
        self.inner.exec_module(module)
        _remove_hook()
        register_tinyclip_configs()

    def __getattr__(self, name: str):  # noqa: ANN204 - resource readers and the like of the wrapped loader
        return getattr(self.inner, name)


def _remove_hook() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _RegisterAfterImport)]


def register_on_open_clip_import() -> None:
    """Register the TinyCLIP configurations now if open_clip is imported, else right after it is (cheap: this does
    not import open_clip)."""
    module = sys.modules.get("open_clip")
    if module is not None and hasattr(module, "list_models"):
        register_tinyclip_configs()
    elif not any(isinstance(f, _RegisterAfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())
