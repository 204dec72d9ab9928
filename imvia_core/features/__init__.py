"""Multi-view image and text features of entities (Eq. 1-3 of the paper consume them).

* :mod:`~imvia_core.types`: :class:`ModalityFeatures`, every view of every entity of one modality.
* :mod:`~imvia_core.features.io`: the ``imvia-views/1`` safetensors format, MoMoK/IMVIA single-vector files and the
  converters between them.
* :mod:`~imvia_core.features.tinyclip`, :mod:`~imvia_core.features.clip_model`,
  :mod:`~imvia_core.features.checkpoints`: TinyCLIP through open_clip, including Microsoft's checkpoints.
* :mod:`~imvia_core.features.image_encoder`, :mod:`~imvia_core.features.text_encoders`: encoders behind one
  interface (TinyCLIP towers; all-MiniLM-L6-v2 as an optional offline text encoder).
* :mod:`~imvia_core.features.inputs`, :mod:`~imvia_core.features.extract`, :mod:`~imvia_core.features.cache`:
  resumable extraction from image folders/manifests and text tables (``imvia features extract``).
* :mod:`~imvia_core.features.name_texts`: text views from the benchmark datasets' entity names and descriptions.

Importing this package registers the TinyCLIP configurations with open_clip (:mod:`~imvia_core.features.tinyclip`):
at once when open_clip is already imported, otherwise as soon as it is, so ``open_clip.create_model("TinyCLIP-...")``
works after ``import imvia_core.features`` without this package paying for importing open_clip itself.
"""

from imvia_core.features.io import (
    load_features,
    save_momok_features,
    save_view_features,
    single_to_views,
    views_to_single,
)
from imvia_core.features.tinyclip import register_on_open_clip_import
from imvia_core.types import ModalityFeatures

register_on_open_clip_import()

__all__ = [
    "ModalityFeatures",
    "load_features",
    "save_view_features",
    "save_momok_features",
    "single_to_views",
    "views_to_single",
]
