"""Resumable extraction: encoded chunks of views are kept on disk until the output file is written.

The views to encode are cut into chunks of consecutive inputs. Each chunk's result (the vectors of the views that
could be encoded, and the reason for each that could not) is written to ``<cache folder>/<modality>-<key>.safetensors``
as soon as the chunk is done. The key is the SHA-256 of the encoder's settings (model, weights, seed, precision,
normalisation, image size) and of the chunk's inputs (for an image: its path, size in bytes and modification time;
for a text: the text). An interrupted extraction started again with the same inputs and encoder finds the finished
chunks and encodes only the rest, so its output equals that of an uninterrupted run; changing an input, the encoder
or the chunk size changes the keys, and stale chunks are simply not used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

__all__ = ["CACHE_FORMAT", "ChunkResult", "ChunkCache", "image_key_item"]

logger = logging.getLogger(__name__)

CACHE_FORMAT = "imvia-view-cache/1"


@dataclass
class ChunkResult:
    """What encoding one chunk produced.

    :param positions: shape ``(n_ok,)`` long, positions (within the chunk) of the views that were encoded.
    :param features: shape ``(n_ok, d)`` float32, their vectors.
    :param skipped: ``(position, reason)`` of every view that could not be encoded.
    """

    positions: torch.Tensor
    features: torch.Tensor
    skipped: list[tuple[int, str]] = field(default_factory=list)


def image_key_item(path: str) -> list:
    """What identifies an image file in a cache key: absolute path, size and modification time (or that it is
    missing)."""
    path = os.path.abspath(path)
    try:
        stat = os.stat(path)
    except OSError as err:
        return [path, f"unreadable: {err.__class__.__name__}"]
    return [path, stat.st_size, stat.st_mtime_ns]


class ChunkCache:
    """A folder of finished chunks; ``folder=None`` disables caching.

    :param folder: where chunks are kept (created on first write).
    :param modality: ``visual`` or ``text``, the file-name prefix.
    """

    def __init__(self, folder: str | Path | None, *, modality: str) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.modality = modality
        self.used: list[Path] = []

    @staticmethod
    def key(settings: dict, items: list) -> str:
        """SHA-256 of the encoder settings and the chunk's inputs."""
        payload = json.dumps(
            {"format": CACHE_FORMAT, "settings": settings, "items": items}, sort_keys=True, default=str
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path | None:
        return None if self.folder is None else self.folder / f"{self.modality}-{key}.safetensors"

    def get(self, key: str) -> ChunkResult | None:
        """The cached result of chunk ``key``, or ``None`` (a damaged cache file is removed and re-encoded)."""
        from safetensors import safe_open

        path = self._path(key)
        if path is None or not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = handle.metadata() or {}
                if meta.get("format") != CACHE_FORMAT or meta.get("key") != key:
                    raise ValueError("not a chunk of this extraction")
                result = ChunkResult(
                    positions=handle.get_tensor("positions").long(),
                    features=handle.get_tensor("features").float(),
                    skipped=[(int(pos), str(reason)) for pos, reason in json.loads(meta.get("skipped", "[]"))],
                )
        except Exception as err:  # a half-written or foreign file: encode the chunk again
            logger.warning("ignoring damaged cache file %s (%s)", path, err)
            path.unlink(missing_ok=True)
            return None
        self.used.append(path)
        return result

    def put(self, key: str, result: ChunkResult) -> None:
        """Store chunk ``key`` (atomically: temporary file, then rename)."""
        from safetensors.torch import save_file

        path = self._path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(path.name + ".tmp")
        meta = {"format": CACHE_FORMAT, "key": key, "skipped": json.dumps(result.skipped)}
        tensors = {"positions": result.positions.long().contiguous(), "features": result.features.float().contiguous()}
        save_file(tensors, str(temp), metadata=meta)
        os.replace(temp, path)
        self.used.append(path)

    def clear(self) -> None:
        """Remove the chunks this run used, and the folder when it is left empty."""
        for path in self.used:
            path.unlink(missing_ok=True)
        self.used = []
        if self.folder is not None and self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()
