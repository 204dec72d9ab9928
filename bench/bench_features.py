"""Throughput of multi-view feature extraction: images/s and texts/s on this machine.

Generates random JPEG images and texts in a temporary folder, then times the real extraction code
(:func:`imvia_core.features.extract.extract_image_views` / ``extract_text_views``: file decoding, preprocessing and
the encoder) with a randomly initialised TinyCLIP (speed does not depend on the weights). Also reports the image
tower alone on ready-made pixels, to separate decoding cost from model cost.

Example::

    python bench/bench_features.py                       # TinyCLIP-ViT-8M-16-Text-3M on the CPU
    python bench/bench_features.py --model TinyCLIP-ViT-39M-16-Text-19M --device cuda:0 --images 2048
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: it reads the variable then

import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from imvia_core.features.clip_model import RandomWeightsWarning, load_clip
from imvia_core.features.extract import extract_image_views, extract_text_views
from imvia_core.features.image_encoder import OpenClipImageEncoder
from imvia_core.features.inputs import ViewSource
from imvia_core.features.text_encoders import MiniLMTextEncoder, OpenClipTextEncoder
from imvia_core.features.tinyclip import DEFAULT_MODEL

_WORDS = (
    "film actor city river album band novel painter university football club election war species mountain "
    "company language museum television series directed by born in located capital member founded award"
).split()


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe_machine(device: torch.device) -> str:
    parts = [
        platform.platform(),
        f"CPU {_cpu_name()}, {os.cpu_count()} logical cores",
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)",
    ]
    if device.type == "cuda":
        parts.append(f"GPU {torch.cuda.get_device_name(device)}")
    parts.append(f"device {device}")
    return "; ".join(parts)


def make_images(folder: Path, count: int, size: int, views: int) -> list[ViewSource]:
    rng = np.random.default_rng(0)
    sources = []
    for i in range(count):
        path = folder / f"img{i:05d}.jpg"
        # smooth random images compress like photos, unlike white noise
        small = rng.integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8)
        Image.fromarray(small).resize((size, size), Image.BILINEAR).save(path, quality=90)
        sources.append(ViewSource(f"e{i // views}", "image", str(path), str(path)))
    return sources


def make_texts(count: int, views: int) -> list[ViewSource]:
    rng = np.random.default_rng(1)
    return [
        ViewSource(f"e{i // views}", "text", " ".join(rng.choice(_WORDS, size=int(rng.integers(3, 25)))), "bench")
        for i in range(count)
    ]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Images/s and texts/s of multi-view feature extraction.")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"open_clip model (default {DEFAULT_MODEL})")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:0")
    parser.add_argument("--images", type=int, default=64, help="number of images (default 64)")
    parser.add_argument("--texts", type=int, default=512, help="number of texts (default 512)")
    parser.add_argument("--image-size", type=int, default=256, help="side of the generated JPEGs in pixels")
    parser.add_argument("--batch-size", type=int, default=32, help="views per forward pass (default 32)")
    parser.add_argument("--workers", type=int, default=0, help="image decoding processes (default 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32", help="autocast precision")
    parser.add_argument(
        "--text-encoder", choices=("tinyclip", "minilm"), default="tinyclip", help="text encoder to time"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        clip = load_clip(args.model, device=args.device, precision=args.precision)
    print(f"machine: {describe_machine(clip.device)}")
    print(f"model: {args.model} (random weights; speed only), batch {args.batch_size}, precision {args.precision}")
    image_encoder = OpenClipImageEncoder(clip)
    text_encoder = (
        OpenClipTextEncoder(clip) if args.text_encoder == "tinyclip" else MiniLMTextEncoder(device=args.device)
    )

    with tempfile.TemporaryDirectory() as tmp:
        sources = make_images(Path(tmp), args.images, args.image_size, views=4)
        entities = sorted({s.entity for s in sources})
        # warm-up (first-call allocations, kernel selection)
        warm = torch.stack([image_encoder.preprocess(Image.open(sources[0].value).convert("RGB"))] * 2)
        image_encoder.encode_pixels(warm)
        _sync(clip.device)
        start = time.perf_counter()
        result = extract_image_views(
            sources,
            encoder=image_encoder,
            entity_names=entities,
            batch_size=args.batch_size,
            workers=args.workers,
            progress=False,
        )
        _sync(clip.device)
        seconds = time.perf_counter() - start
        assert result.num_encoded == args.images
        pixels = torch.randn(args.batch_size, 3, *clip.image_size)
        batches = max(1, args.images // args.batch_size)
        start = time.perf_counter()
        for _ in range(batches):
            image_encoder.encode_pixels(pixels)
        _sync(clip.device)
        model_only = batches * args.batch_size / (time.perf_counter() - start)
    print(
        f"images: {args.images} in {seconds:.2f} s -> {args.images / seconds:.1f} images/s end to end "
        f"(JPEG {args.image_size}px decode + preprocess + encode); image tower alone {model_only:.1f} images/s"
    )

    texts = make_texts(args.texts, views=2)
    text_encoder.encode([texts[0].value] * 2)
    start = time.perf_counter()
    result = extract_text_views(
        texts,
        encoder=text_encoder,
        entity_names=sorted({s.entity for s in texts}),
        batch_size=args.batch_size,
        progress=False,
    )
    _sync(clip.device)
    seconds = time.perf_counter() - start
    assert result.num_encoded == args.texts
    print(f"texts: {args.texts} in {seconds:.2f} s -> {args.texts / seconds:.1f} texts/s ({text_encoder.name})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
