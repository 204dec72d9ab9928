"""Image side of feature extraction: read an image file safely and encode images with an open_clip image tower.

Every image of an entity becomes one vector ``f_{V,i,k}`` of Eq. 1-3. Files that cannot be read as images (missing,
truncated, corrupt, not an image at all) are reported with a reason instead of stopping the run.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from imvia_core.features.clip_model import ClipModel

__all__ = ["ImageEncoder", "OpenClipImageEncoder", "read_image"]


def read_image(path: str | Path) -> tuple[Image.Image | None, str | None]:
    """Open and fully decode an image as RGB.

    :return: ``(image, None)``, or ``(None, reason)`` when the file is missing, unreadable, not an image or corrupt.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL warns about EXIF and palette quirks of otherwise fine files
            with Image.open(path) as image:
                image.load()
                return image.convert("RGB"), None
    except FileNotFoundError:
        return None, "file not found"
    except IsADirectoryError:
        return None, "is a directory"
    except PermissionError:
        return None, "permission denied"
    except UnidentifiedImageError:
        return None, "not an image file (format not recognised)"
    except Image.DecompressionBombError as err:
        return None, f"image too large: {err}"
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        return None, f"corrupt image: {err}"


@runtime_checkable
class ImageEncoder(Protocol):
    """What feature extraction needs from an image encoder (see :class:`~imvia_core.features.text_encoders.
    TextEncoder` for the attributes)."""

    name: str
    dim: int
    weights_id: str
    random_init: bool

    def settings(self) -> dict: ...

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """PIL RGB image -> tensor ``(3, H, W)``."""
        ...

    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(n, 3, H, W)`` -> float32 CPU tensor ``(n, dim)``."""
        ...


class OpenClipImageEncoder:
    """The image tower of an open_clip model, with the model's evaluation transform (resize, centre crop,
    normalise).

    :param clip: the loaded model.
    :param normalize: L2-normalise each vector.
    """

    def __init__(self, clip: ClipModel, *, normalize: bool = True) -> None:
        self.clip = clip
        self.normalize = normalize
        self.name = f"open_clip:{clip.model_name}"
        self.dim = clip.embed_dim
        self.weights_id = clip.weights
        self.random_init = clip.random_init

    def settings(self) -> dict:
        return {"encoder": self.name, **self.clip.settings(), "normalize": self.normalize, "size": self.clip.image_size}

    @property
    def transform(self):
        """The preprocessing callable alone (what image-decoding worker processes receive)."""
        return self.clip.preprocess

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self.clip.preprocess(image)

    @torch.no_grad()
    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        with self.clip.autocast():
            vectors = self.clip.model.encode_image(pixels.to(self.clip.device, non_blocking=True))
        vectors = vectors.float()
        if self.normalize:
            vectors = F.normalize(vectors, dim=-1)
        return vectors.cpu()
