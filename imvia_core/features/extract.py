"""Multi-view feature extraction: encode every image and every text of every entity, keep all views (Eq. 1-3).

IMVIA fuses the views of one modality per entity with a relation-conditioned gate (Eq. 1-3), so extraction keeps
each view as its own vector instead of averaging them: ``views[i, k]`` is the ``k``-th usable view of entity ``i``
(in input order), ``mask[i, k]`` says whether slot ``k`` is used. Entity ``i`` is row ``i`` of the entity order
(the dataset's ``entity2id``).

Inputs that cannot be used (unreadable or corrupt images, empty texts, entities outside the entity order) are
skipped, counted and listed with their reason in the result and the manifest; the run goes on. Chunks of finished
work are cached (:mod:`imvia_core.features.cache`) so that an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from imvia_core import __version__
from imvia_core.errors import InputError
from imvia_core.features.cache import ChunkCache, ChunkResult, image_key_item
from imvia_core.features.image_encoder import ImageEncoder, read_image
from imvia_core.features.inputs import SkippedView, ViewSource, entity_order_sha256
from imvia_core.features.io import _atomic_write, manifest_path, save_view_features
from imvia_core.features.text_encoders import TextEncoder
from imvia_core.types import ModalityFeatures

__all__ = [
    "ExtractionResult",
    "extract_image_views",
    "extract_text_views",
    "write_extraction",
    "ChunkHook",
]

#: called after each newly encoded chunk with (chunk index, number of chunks); may raise to stop the run.
ChunkHook = Callable[[int, int], None]

MANIFEST_FORMAT = "imvia-views-manifest/1"


@dataclass
class ExtractionResult:
    """Views of one modality and what happened to every input.

    :param features: views ``(E, K_max, d)`` and mask ``(E, K_max)``.
    :param entity_names: entity names in row order.
    :param skipped: inputs that were not encoded, with reasons.
    :param num_inputs: inputs listed (usable or not).
    :param num_encoded: views encoded (before ``max_views``).
    :param dropped_over_max_views: usable views left out because their entity already had ``max_views``.
    :param chunks_total: number of chunks.
    :param chunks_from_cache: chunks found in the cache (not encoded again).
    :param seconds: wall-clock time.
    :param encoder: encoder description (name, weights, random_init, settings).
    :param cache_files: cached chunk files this run used (already removed unless ``keep_cache``).
    """

    features: ModalityFeatures
    entity_names: list[str]
    skipped: list[SkippedView]
    num_inputs: int
    num_encoded: int
    dropped_over_max_views: int = 0
    chunks_total: int = 0
    chunks_from_cache: int = 0
    seconds: float = 0.0
    encoder: dict = field(default_factory=dict)
    cache_files: list[str] = field(default_factory=list)

    def manifest(self) -> dict:
        """Counts, skipped inputs and provenance, as written to ``<file>.manifest.json``."""
        counts = self.features.view_counts
        reasons = Counter(_reason_group(item.reason) for item in self.skipped)
        return {
            "format": MANIFEST_FORMAT,
            "modality": self.features.modality,
            "num_entities": self.features.num_entities,
            "entities_with_views": int((counts > 0).sum()),
            "entities_without_views": int((counts == 0).sum()),
            "num_views": int(counts.sum()),
            "max_views": self.features.max_views,
            "dim": self.features.dim,
            "views_per_entity": {str(k): int(v) for k, v in sorted(Counter(counts.tolist()).items())},
            "num_inputs": self.num_inputs,
            "num_encoded": self.num_encoded,
            "dropped_over_max_views": self.dropped_over_max_views,
            "skipped_count": len(self.skipped),
            "skipped_by_reason": dict(sorted(reasons.items())),
            "skipped": [item.as_dict() for item in self.skipped],
            "chunks_total": self.chunks_total,
            "chunks_from_cache": self.chunks_from_cache,
            "seconds": round(self.seconds, 3),
            **self.encoder,
            "entity_order_sha256": entity_order_sha256(self.entity_names),
            "entities": self.entity_names,
        }


def _reason_group(reason: str) -> str:
    return reason.split(":", 1)[0]


class _ImageFiles(Dataset):
    """Decodes and preprocesses the image files of one chunk; a file that fails yields its reason instead."""

    def __init__(self, paths: Sequence[str], preprocess: Callable) -> None:
        self.paths = list(paths)
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None]:
        image, reason = read_image(self.paths[index])
        if image is None:
            return index, None, reason
        try:
            return index, self.preprocess(image), None
        except Exception as err:  # a transform failing on an odd image must not stop the run
            return index, None, f"preprocessing failed: {err}"


def _collate(batch: list) -> list:
    return batch


def _encoder_info(encoder: ImageEncoder | TextEncoder) -> dict:
    return {
        "encoder": encoder.name,
        "weights": encoder.weights_id,
        "random_init": bool(encoder.random_init),
        "encoder_settings": encoder.settings(),
    }


def _select(
    sources: Sequence[ViewSource], index: dict[str, int], modality: str
) -> tuple[list[ViewSource], list[SkippedView]]:
    usable, skipped = [], []
    for source in sources:
        shown = source.value if source.kind == "image" else source.value[:80]
        if source.entity not in index:
            skipped.append(SkippedView(source.entity, shown, "entity not in the entity order", source.where))
        elif source.kind == "text" and not source.value.strip():
            skipped.append(SkippedView(source.entity, "", "empty text", source.where))
        else:
            usable.append(source)
    if sources and not usable and all(item.reason.startswith("entity not") for item in skipped):
        raise InputError(
            f"none of the {len(sources)} {modality} inputs names an entity of the entity order "
            f"(first: {sources[0].entity!r} at {sources[0].where}); wrong --entities/--dataset?"
        )
    return usable, skipped


def _run(
    *,
    modality: str,
    sources: Sequence[ViewSource],
    entity_names: Sequence[str],
    encoder: ImageEncoder | TextEncoder,
    encode_chunk: Callable[[list[ViewSource], Callable[[int], None]], ChunkResult],
    key_item: Callable[[ViewSource], object],
    chunk_size: int,
    max_views: int | None,
    cache_dir: str | Path | None,
    progress: bool,
    on_chunk_done: ChunkHook | None,
    pre_skipped: Sequence[SkippedView] = (),
) -> tuple[ExtractionResult, ChunkCache]:
    if chunk_size < 1:
        raise InputError(f"chunk size must be at least 1, got {chunk_size}")
    if max_views is not None and max_views < 1:
        raise InputError(f"max_views must be at least 1, got {max_views}")
    start = time.perf_counter()
    names = list(entity_names)
    index = {name: i for i, name in enumerate(names)}
    if len(index) != len(names):
        raise InputError("the entity order holds a name twice")
    usable, skipped = _select(sources, index, modality)
    skipped = list(pre_skipped) + skipped
    cache = ChunkCache(cache_dir, modality=modality)
    settings = encoder.settings()
    chunks = [usable[i : i + chunk_size] for i in range(0, len(usable), chunk_size)]
    vectors: list[torch.Tensor | None] = [None] * len(usable)
    from_cache = 0
    unit = "image" if modality == "visual" else "text"
    quiet = {} if progress else {"disable": True}  # when shown, TQDM_DISABLE=1 still silences the bar
    with tqdm(total=len(usable), desc=f"{modality} views", unit=unit, **quiet) as bar:
        for number, chunk in enumerate(chunks):
            key = cache.key(settings, [key_item(source) for source in chunk])
            result = cache.get(key)
            if result is None:
                result = encode_chunk(chunk, bar.update)
                cache.put(key, result)
                if on_chunk_done is not None:
                    on_chunk_done(number, len(chunks))
            else:
                from_cache += 1
                bar.update(len(chunk))
            offset = number * chunk_size
            for position, vector in zip(result.positions.tolist(), result.features):
                vectors[offset + position] = vector
            for position, reason in result.skipped:
                source = chunk[position]
                skipped.append(SkippedView(source.entity, source.value, reason, source.where))

    per_entity: list[list[torch.Tensor]] = [[] for _ in names]
    dropped = 0
    for source, vector in zip(usable, vectors):
        if vector is None:
            continue
        bucket = per_entity[index[source.entity]]
        if max_views is not None and len(bucket) >= max_views:
            dropped += 1
            continue
        bucket.append(vector)
    k_max = max([len(bucket) for bucket in per_entity] + [1])
    views = torch.zeros(len(names), k_max, encoder.dim)
    mask = torch.zeros(len(names), k_max, dtype=torch.bool)
    for row, bucket in enumerate(per_entity):
        if bucket:
            views[row, : len(bucket)] = torch.stack(bucket)
            mask[row, : len(bucket)] = True
    info = _encoder_info(encoder)
    features = ModalityFeatures(
        views=views,
        mask=mask,
        modality=modality,
        metadata={
            "encoder": info["encoder"],
            "weights": info["weights"],
            "random_init": info["random_init"],
            "entity_order_sha256": entity_order_sha256(names),
        },
    )
    result = ExtractionResult(
        features=features,
        entity_names=names,
        skipped=skipped,
        num_inputs=len(sources) + len(pre_skipped),
        num_encoded=sum(vector is not None for vector in vectors),
        dropped_over_max_views=dropped,
        chunks_total=len(chunks),
        chunks_from_cache=from_cache,
        seconds=time.perf_counter() - start,
        encoder=info,
        cache_files=[str(path) for path in cache.used],
    )
    return result, cache


def extract_image_views(
    sources: Sequence[ViewSource],
    *,
    encoder: ImageEncoder,
    entity_names: Sequence[str],
    batch_size: int = 32,
    chunk_size: int = 1024,
    max_views: int | None = None,
    cache_dir: str | Path | None = None,
    workers: int = 0,
    progress: bool = True,
    on_chunk_done: ChunkHook | None = None,
    pre_skipped: Sequence[SkippedView] = (),
    keep_cache: bool = False,
) -> ExtractionResult:
    """Encode every image view (see the module docstring).

    :param sources: image views, from :func:`~imvia_core.features.inputs.read_image_sources`.
    :param encoder: the image encoder.
    :param entity_names: entity order (row ``i`` is ``entity_names[i]``).
    :param batch_size: images per forward pass.
    :param chunk_size: images per cached chunk.
    :param max_views: keep at most this many views per entity (the first ones in input order); ``None``: all.
    :param cache_dir: folder of the resumable cache; ``None`` disables it.
    :param workers: DataLoader worker processes that decode images (0: in this process; on a GPU, 4-8 keep it
        busy).
    :param progress: show a progress bar.
    :param on_chunk_done: called after each newly encoded chunk (tests use it to interrupt a run).
    :param pre_skipped: inputs already rejected while listing them (reported with the others).
    :param keep_cache: keep the cached chunks after success (they are removed otherwise).
    :return: the views, with counts and skipped inputs.
    """
    device = getattr(getattr(encoder, "clip", None), "device", torch.device("cpu"))

    def encode_chunk(chunk: list[ViewSource], advance: Callable[[int], None]) -> ChunkResult:
        loader = DataLoader(
            _ImageFiles([source.value for source in chunk], getattr(encoder, "transform", encoder.preprocess)),
            batch_size=batch_size,
            num_workers=workers,
            collate_fn=_collate,
            pin_memory=device.type == "cuda",
        )
        positions: list[int] = []
        features: list[torch.Tensor] = []
        skipped: list[tuple[int, str]] = []
        for batch in loader:
            good = [(i, pixels) for i, pixels, _ in batch if pixels is not None]
            skipped.extend((i, reason) for i, pixels, reason in batch if pixels is None)
            if good:
                features.append(encoder.encode_pixels(torch.stack([pixels for _, pixels in good])))
                positions.extend(i for i, _ in good)
            advance(len(batch))
        stacked = torch.cat(features) if features else torch.zeros(0, encoder.dim)
        return ChunkResult(torch.tensor(positions, dtype=torch.long), stacked, skipped)

    result, cache = _run(
        modality="visual",
        sources=sources,
        entity_names=entity_names,
        encoder=encoder,
        encode_chunk=encode_chunk,
        key_item=lambda source: image_key_item(source.value),
        chunk_size=chunk_size,
        max_views=max_views,
        cache_dir=cache_dir,
        progress=progress,
        on_chunk_done=on_chunk_done,
        pre_skipped=pre_skipped,
    )
    if not keep_cache:
        cache.clear()
    return result


def extract_text_views(
    sources: Sequence[ViewSource],
    *,
    encoder: TextEncoder,
    entity_names: Sequence[str],
    batch_size: int = 64,
    chunk_size: int = 4096,
    max_views: int | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    on_chunk_done: ChunkHook | None = None,
    keep_cache: bool = False,
) -> ExtractionResult:
    """Encode every text view; arguments as for :func:`extract_image_views`. Empty texts are skipped."""

    def encode_chunk(chunk: list[ViewSource], advance: Callable[[int], None]) -> ChunkResult:
        parts = []
        for start in range(0, len(chunk), batch_size):
            texts = [source.value for source in chunk[start : start + batch_size]]
            parts.append(encoder.encode(texts, batch_size=batch_size))
            advance(len(texts))
        features = torch.cat(parts) if parts else torch.zeros(0, encoder.dim)
        return ChunkResult(torch.arange(len(chunk)), features.float(), [])

    result, cache = _run(
        modality="text",
        sources=sources,
        entity_names=entity_names,
        encoder=encoder,
        encode_chunk=encode_chunk,
        key_item=lambda source: source.value,
        chunk_size=chunk_size,
        max_views=max_views,
        cache_dir=cache_dir,
        progress=progress,
        on_chunk_done=on_chunk_done,
    )
    if not keep_cache:
        cache.clear()
    return result


def write_extraction(
    result: ExtractionResult,
    path: str | Path,
    *,
    dtype: torch.dtype = torch.float32,
    extra: dict | None = None,
) -> Path:
    """Write the features (``path``, format ``imvia-views/1``) and the manifest (``<path>.manifest.json``).

    :param extra: more provenance for both files (inputs, device, entity-order origin, ...).
    :return: the manifest path.
    """
    from importlib import metadata as _metadata

    try:
        open_clip_version = _metadata.version("open_clip_torch")
    except _metadata.PackageNotFoundError:
        open_clip_version = "not installed"
    path = Path(path)
    provenance = {
        "imvia_version": __version__,
        "torch_version": torch.__version__,
        "open_clip_version": open_clip_version,
        "python": platform.python_version(),
        **(extra or {}),
    }
    save_view_features(
        path,
        result.features,
        entity_names=result.entity_names,
        metadata={"normalized": result.encoder.get("encoder_settings", {}).get("normalize", True), **provenance},
        dtype=dtype,
    )
    manifest = {
        "features_file": path.name,
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "dtype": str(dtype).removeprefix("torch."),
        **provenance,
        **result.manifest(),
    }
    target = manifest_path(path)

    def write(temp: str) -> None:
        Path(temp).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    _atomic_write(target, write)
    return target
