"""The synthetic graph on disk, in the layout of the real datasets, with its feature files and raw views.

:func:`write_synthetic` writes ``entity2id.txt``, ``relation2id.txt``, ``train.txt``, ``valid.txt``, ``test.txt``,
the two feature files of :mod:`imvia_core.data.synthetic`'s graph, and optionally a few raw views per entity (small
PNG images and short texts) for the feature-extraction walkthrough.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import torch
from PIL import Image

from imvia_core.data.synthetic import SyntheticKG, generate_synthetic
from imvia_core.features.io import save_view_features

__all__ = ["write_synthetic"]

_WORDS_A = ["red", "blue", "green", "amber", "violet", "grey", "golden", "silver"]
_WORDS_B = ["river", "tower", "forest", "engine", "island", "garden", "bridge", "harbour"]
_WORDS_C = ["ancient", "modern", "northern", "southern", "small", "vast", "quiet", "busy"]
_NOISE_WORDS = ["lorem", "ipsum", "dolor", "sit", "amet", "tempor", "magna", "aliqua", "veniam", "nostrud"]


def _bucket(x: float, n: int) -> int:
    """Map ``x`` (a latent component, roughly in [-0.6, 0.6]) to one of ``n`` buckets."""
    return int(min(n - 1, max(0, math.floor((x + 0.6) / 1.2 * n))))


def _raw_text(z: torch.Tensor, relevant: bool, generator: torch.Generator) -> str:
    if not relevant:
        idx = torch.randint(len(_NOISE_WORDS), (6,), generator=generator).tolist()
        return " ".join(_NOISE_WORDS[i] for i in idx)
    zs = z.tolist()
    return (
        f"a {_WORDS_C[_bucket(zs[-1], 8)]} {_WORDS_A[_bucket(zs[-2], 8)]} {_WORDS_B[_bucket(zs[-3], 8)]} "
        f"near the {_WORDS_A[_bucket(zs[-4], 8)]} {_WORDS_B[_bucket(zs[-5], 8)]}"
    )


def _raw_image(z: torch.Tensor, relevant: bool, generator: torch.Generator, size: int = 32):
    if not relevant:
        pixels = torch.randint(0, 256, (size, size, 3), generator=generator, dtype=torch.uint8)
        return Image.fromarray(pixels.numpy(), mode="RGB")
    zs = z.tolist()
    colour = torch.tensor([_bucket(zs[0], 8), _bucket(zs[1], 8), _bucket(zs[2], 8)], dtype=torch.float32) * 32 + 16
    freq = 1 + _bucket(zs[3], 6)
    angle = (_bucket(zs[4], 8) / 8.0) * math.pi
    yy, xx = torch.meshgrid(
        torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij"
    )
    wave = 0.5 + 0.5 * torch.sin((xx * math.cos(angle) + yy * math.sin(angle)) * freq * 2 * math.pi / size)
    img = colour.view(1, 1, 3) * (0.4 + 0.6 * wave.unsqueeze(-1))
    img = img + torch.randn(size, size, 3, generator=generator) * 6
    return Image.fromarray(img.clamp(0, 255).to(torch.uint8).numpy(), mode="RGB")


def _write_triples(path: Path, triples: torch.Tensor, entities: list[str], relations: list[str]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for h, r, t in triples.tolist():
            fh.write(f"{entities[h]} {relations[r]} {entities[t]} .\n")


def write_synthetic(
    out_dir: str | Path,
    kg: SyntheticKG | None = None,
    *,
    raw_view_entities: int = 0,
) -> Path:
    """Write ``kg`` (default: the default synthetic graph) in the layout of the real datasets.

    :param out_dir: target folder; created if missing.
    :param kg: the graph to write.
    :param raw_view_entities: also write raw views (PNG images under ``raw/images/<entity>/`` and rows of
        ``raw/texts.tsv``) for the first this many entities, relevant and distractor views alike, following the
        same masks as the features; ``raw/truth.tsv`` records which raw view is relevant.
    :return: ``out_dir`` as a path.
    """
    kg = kg or generate_synthetic()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    g = kg.graph
    entities = list(g.entity_to_id)
    relations = list(g.relation_to_id)
    (out / "entity2id.txt").write_text("".join(f"{e} {i}\n" for i, e in enumerate(entities)), encoding="utf-8")
    (out / "relation2id.txt").write_text("".join(f"{r} {i}\n" for i, r in enumerate(relations)), encoding="utf-8")
    for split in ("train", "valid", "test"):
        _write_triples(out / f"{split}.txt", g.split(split), entities, relations)
    derived = out / "derived"
    derived.mkdir(exist_ok=True)
    with (derived / "entity_names.tsv").open("w", encoding="utf-8") as fh:
        fh.write("id\tname\n")
        for i, name in enumerate(g.entity_names or entities):
            fh.write(f"{i}\t{name}\n")
    features = out / "features"
    features.mkdir(exist_ok=True)
    for modality, feats in kg.features.items():
        save_view_features(features / f"{modality}.safetensors", feats, entity_names=entities, metadata=feats.metadata)
    truth = {m: rel.to(torch.uint8).tolist() for m, rel in kg.view_relevance.items()}
    (features / "view_relevance.json").write_text(json.dumps(truth), encoding="utf-8")
    (out / "synthetic_config.json").write_text(json.dumps(asdict(kg.config), indent=2), encoding="utf-8")

    if raw_view_entities > 0:
        gen = torch.Generator().manual_seed(kg.config.seed + 1)
        raw = out / "raw"
        (raw / "images").mkdir(parents=True, exist_ok=True)
        rows_text, rows_truth = ["entity\ttext"], ["entity\tmodality\tview\trelevant"]
        for e in range(min(raw_view_entities, g.num_entities)):
            z = kg.latent[e]
            for k in torch.nonzero(kg.visual.mask[e]).squeeze(1).tolist():
                relevant = bool(kg.view_relevance["visual"][e, k])
                folder = raw / "images" / entities[e]
                folder.mkdir(exist_ok=True)
                _raw_image(z, relevant, gen).save(folder / f"view{k}.png")
                rows_truth.append(f"{entities[e]}\tvisual\timages/{entities[e]}/view{k}.png\t{int(relevant)}")
            for k in torch.nonzero(kg.text.mask[e]).squeeze(1).tolist():
                relevant = bool(kg.view_relevance["text"][e, k])
                text = _raw_text(z, relevant, gen)
                rows_text.append(f"{entities[e]}\t{text}")
                rows_truth.append(f"{entities[e]}\ttext\t{text}\t{int(relevant)}")
        (raw / "texts.tsv").write_text("\n".join(rows_text) + "\n", encoding="utf-8")
        (raw / "truth.tsv").write_text("\n".join(rows_truth) + "\n", encoding="utf-8")
    return out
