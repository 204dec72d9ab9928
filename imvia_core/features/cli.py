"""``imvia features ...``: extract multi-view features, build text features from entity names, convert, inspect.

* ``imvia features extract --images DIR_OR_TSV --texts TSV --out FILE``: encode every image and text view of every
  entity with TinyCLIP (or any open_clip model), keeping all views.
* ``imvia features text-from-names --dataset NAME --out FILE``: text views from entity names (and MKG-W
  descriptions), offline.
* ``imvia features convert IN OUT``: project view files <-> MoMoK/IMVIA single-vector files.
* ``imvia features info FILE``: shapes, counts, metadata.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import torch

from imvia_core.data.loading import load_graph
from imvia_core.errors import ConfigError, InputError
from imvia_core.features.cache import ChunkCache
from imvia_core.features.clip_model import RandomWeightsWarning, load_clip
from imvia_core.features.extract import extract_image_views, extract_text_views, write_extraction
from imvia_core.features.image_encoder import OpenClipImageEncoder
from imvia_core.features.inputs import (
    entity_order_from_file,
    entity_order_from_sources,
    read_image_sources,
    read_text_sources,
)
from imvia_core.features.io import (
    load_features,
    manifest_path,
    save_momok_features,
    save_view_features,
    views_to_single,
)
from imvia_core.features.name_texts import name_text_sources, vocabulary_in_id_order
from imvia_core.features.text_encoders import MiniLMTextEncoder, OpenClipTextEncoder
from imvia_core.features.tinyclip import DEFAULT_MODEL

__all__ = ["register", "output_paths"]

_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def output_paths(out: str | Path, *, images: bool, texts: bool) -> dict[str, Path]:
    """Where ``extract`` writes: ``out`` itself for one modality; ``<stem>.visual.safetensors`` and
    ``<stem>.text.safetensors`` for both (``<stem>`` is ``out`` without ``.safetensors``)."""
    out = Path(out)
    if images and texts:
        stem = out.name.removesuffix(".safetensors")
        return {
            "visual": out.with_name(f"{stem}.visual.safetensors"),
            "text": out.with_name(f"{stem}.text.safetensors"),
        }
    return {"visual": out} if images else {"text": out}


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"open_clip model name (default {DEFAULT_MODEL}; also TinyCLIP-ViT-39M-16-Text-19M, any name of "
        "open_clip.list_models(), or hf-hub:org/repo)",
    )
    parser.add_argument(
        "--pretrained",
        default=None,
        metavar="WEIGHTS",
        help="checkpoint file (Microsoft TinyCLIP .pt or open_clip layout; .pt/.pth/.bin/.safetensors) or open_clip "
        "pretrained tag (downloaded, needs network). Left out: RANDOM weights, features are not meaningful",
    )
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow pickled Python objects in a torch.save checkpoint (only for files from a trusted source)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights when --pretrained is left out")
    parser.add_argument(
        "--precision", choices=("fp32", "fp16", "bf16"), default="fp32", help="autocast precision (default fp32)"
    )


def _add_run_options(parser: argparse.ArgumentParser, *, images: bool) -> None:
    parser.add_argument("--out", required=True, metavar="FILE", help="output .safetensors file (format imvia-views/1)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:0, mps")
    parser.add_argument("--batch-size", type=int, default=32, help="views per forward pass (default 32)")
    parser.add_argument("--chunk-size", type=int, default=1024, help="views per cached chunk (default 1024)")
    if images:
        parser.add_argument("--workers", type=int, default=0, help="processes decoding images (default 0: none)")
    parser.add_argument("--max-views", type=int, default=None, help="keep at most K views per entity (default: all)")
    parser.add_argument("--dtype", choices=tuple(_DTYPES), default="float32", help="storage type of the views")
    parser.add_argument("--no-normalize", action="store_true", help="keep raw embeddings (default: L2-normalised)")
    parser.add_argument(
        "--cache-dir", default=None, help="folder of the resumable cache (default: <out>.cache beside the output)"
    )
    parser.add_argument("--no-cache", action="store_true", help="do not cache finished chunks (no resume)")
    parser.add_argument("--keep-cache", action="store_true", help="keep the cached chunks after success")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``features`` and its subcommands to the ``imvia`` command line."""
    features = subparsers.add_parser(
        "features",
        help="extract, convert and inspect multi-view image/text features",
        description="Multi-view feature extraction with TinyCLIP (open_clip) and feature-file tools.",
    )
    sub = features.add_subparsers(dest="features_command", metavar="SUBCOMMAND")
    features.set_defaults(func=lambda args: (features.print_help(), 2)[1])

    extract = sub.add_parser(
        "extract",
        help="encode every image and text view of every entity",
        description="Encode every image and text view of every entity, keeping all views (not pooled). With both "
        "--images and --texts, writes <stem>.visual.safetensors and <stem>.text.safetensors; each output gets a "
        "<file>.manifest.json with counts and skipped inputs. Interrupted runs resume from the cache.",
    )
    extract.add_argument(
        "--images",
        metavar="DIR_OR_TSV",
        help="folder with one sub-folder of images per entity, or a TSV manifest of 'entity<TAB>path' rows",
    )
    extract.add_argument(
        "--texts", metavar="TSV", help="TSV of 'entity<TAB>text' rows (several rows per entity allowed)"
    )
    order = extract.add_mutually_exclusive_group()
    order.add_argument("--entities", metavar="ENTITY2ID", help="entity2id.txt giving the row order of the output")
    order.add_argument(
        "--dataset", help="take the row order from this dataset's entity2id (DB15K, MKG-W, MKG-Y, folder)"
    )
    extract.add_argument(
        "--text-encoder",
        choices=("tinyclip", "minilm"),
        default="tinyclip",
        help="text encoder: the --model text tower (default) or all-MiniLM-L6-v2 (optional 'text' extra)",
    )
    _add_model_options(extract)
    _add_run_options(extract, images=True)
    extract.set_defaults(func=_cmd_extract)

    names = sub.add_parser(
        "text-from-names",
        help="text views of a dataset's entities from their names (and MKG-W descriptions)",
        description="One text view per entity from its readable name and, with --descriptions, a second one from its "
        "description where the dataset has one (MKG-W). Works offline with the MiniLM encoder.",
    )
    names.add_argument("--dataset", required=True, help="DB15K, MKG-W, MKG-Y or a dataset folder")
    names.add_argument(
        "--encoder",
        choices=("minilm", "tinyclip"),
        default="minilm",
        help="minilm: all-MiniLM-L6-v2, real weights offline (default); tinyclip: the --model text tower",
    )
    names.add_argument("--descriptions", action="store_true", help="add a view from each entity's description")
    _add_model_options(names)
    _add_run_options(names, images=False)
    names.set_defaults(func=_cmd_text_from_names)

    convert = sub.add_parser(
        "convert",
        help="convert between view files and MoMoK/IMVIA single-vector files",
        description="Views -> single vectors (mean of each entity's valid views) or single vectors -> views (one view "
        "per entity, masked where the vector is all zero).",
    )
    convert.add_argument("input", metavar="IN", help="feature file (.safetensors, .pth, .pt or .pkl)")
    convert.add_argument("output", metavar="OUT", help="file to write")
    convert.add_argument(
        "--to",
        choices=("momok", "views"),
        default=None,
        help="output kind (default: from OUT's extension: .pth/.pt/.pkl -> momok, .safetensors -> views)",
    )
    convert.add_argument("--modality", choices=("visual", "text"), default=None, help="modality of the features")
    convert.add_argument("--entities", metavar="ENTITY2ID", help="entity2id.txt: checks/records the entity order")
    convert.add_argument("--dtype", choices=tuple(_DTYPES), default="float32", help="storage type for views output")
    convert.add_argument("--allow-pickle", action="store_true", help="unpickle arbitrary objects (trusted files only)")
    convert.set_defaults(func=_cmd_convert)

    info = sub.add_parser("info", help="print shapes, counts and metadata of a feature file")
    info.add_argument("file", metavar="FILE", help="feature file (.safetensors, .pth, .pt or .pkl)")
    info.add_argument("--allow-pickle", action="store_true", help="unpickle arbitrary objects (trusted files only)")
    info.set_defaults(func=_cmd_info)


# ------------------------------------------------------------------------------------------------------- helpers


def _warn_random(name: str) -> None:
    bar = "!" * 78
    print(
        f"{bar}\n! {name} has RANDOM weights: the features are NOT meaningful (tests, benchmarks only).\n"
        f"! Pass --pretrained CHECKPOINT (e.g. Microsoft's TinyCLIP .pt file) for real features.\n{bar}",
        file=sys.stderr,
    )


def _cache_dir(args: argparse.Namespace, out: Path) -> Path | None:
    if args.no_cache:
        return None
    return Path(args.cache_dir) if args.cache_dir else out.with_name(out.name + ".cache")


def _check_run_args(args: argparse.Namespace) -> None:
    for option in ("batch_size", "chunk_size"):
        if getattr(args, option) < 1:
            raise ConfigError(f"--{option.replace('_', '-')} must be at least 1")
    if getattr(args, "workers", 0) < 0:
        raise ConfigError("--workers must be 0 or more")
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError("--threads must be at least 1")
        torch.set_num_threads(args.threads)


def _load_clip_from_args(args: argparse.Namespace):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)  # the banner below says it louder
        clip = load_clip(
            args.model,
            weights=args.pretrained,
            device=args.device,
            precision=args.precision,
            seed=args.seed,
            allow_pickle=args.trust_checkpoint,
        )
    if clip.random_init:
        _warn_random(args.model)
    return clip


def _text_encoder(kind: str, args: argparse.Namespace, clip):
    if kind == "minilm":
        return MiniLMTextEncoder(device=args.device)
    return OpenClipTextEncoder(
        clip if clip is not None else _load_clip_from_args(args), normalize=not args.no_normalize
    )


def _summary(result, path: Path, manifest: Path) -> str:
    data = result.manifest()
    flag = "  [RANDOM WEIGHTS]" if data["random_init"] else ""
    return (
        f"wrote {path}: {data['modality']} views {tuple(result.features.views.shape)}, "
        f"{data['entities_with_views']}/{data['num_entities']} entities with views, {data['num_views']} views, "
        f"{data['skipped_count']} inputs skipped, "
        f"{data['chunks_from_cache']}/{data['chunks_total']} chunks from cache, "
        f"{data['seconds']:.1f} s{flag}\n  manifest: {manifest}"
    )


# ------------------------------------------------------------------------------------------------------- commands


def _cmd_extract(args: argparse.Namespace) -> int:
    if not args.images and not args.texts:
        raise ConfigError("give --images, --texts or both")
    _check_run_args(args)
    image_sources, pre_skipped = read_image_sources(args.images) if args.images else ([], [])
    text_sources = read_text_sources(args.texts) if args.texts else []
    if args.entities:
        entity_names, origin = entity_order_from_file(args.entities), f"entity2id file {args.entities}"
    elif args.dataset:
        entity_names, origin = vocabulary_in_id_order(load_graph(args.dataset)), f"dataset {args.dataset}"
    else:
        entity_names, origin = entity_order_from_sources(image_sources, text_sources), "inputs, sorted by name"
        if not entity_names:
            raise InputError("the inputs name no entity")
    outputs = output_paths(args.out, images=bool(args.images), texts=bool(args.texts))
    cache_dir = _cache_dir(args, Path(args.out))
    clip = None
    if args.images or args.text_encoder == "tinyclip":
        clip = _load_clip_from_args(args)
    common = {
        "entity_names": entity_names,
        "batch_size": args.batch_size,
        "chunk_size": args.chunk_size,
        "max_views": args.max_views,
        "cache_dir": cache_dir,
        "progress": not args.quiet,
        "keep_cache": True,  # cleared below, once every output is written
    }
    extra = {"device": str(args.device), "entity_order": origin}
    results = []
    if args.images:
        encoder = OpenClipImageEncoder(clip, normalize=not args.no_normalize)
        result = extract_image_views(
            image_sources, encoder=encoder, workers=args.workers, pre_skipped=pre_skipped, **common
        )
        results.append((result, outputs["visual"], {"inputs": str(args.images), "model": args.model, **extra}))
    if args.texts:
        encoder = _text_encoder(args.text_encoder, args, clip)
        result = extract_text_views(text_sources, encoder=encoder, **common)
        model = args.model if args.text_encoder == "tinyclip" else "all-MiniLM-L6-v2"
        results.append((result, outputs["text"], {"inputs": str(args.texts), "model": model, **extra}))
    for result, path, provenance in results:
        manifest = write_extraction(result, path, dtype=_DTYPES[args.dtype], extra=provenance)
        print(_summary(result, path, manifest))
    if cache_dir is not None and not args.keep_cache:
        cache = ChunkCache(cache_dir, modality="visual")
        cache.used = [Path(file) for result, _, _ in results for file in result.cache_files]
        cache.clear()
    return 0


def _cmd_text_from_names(args: argparse.Namespace) -> int:
    _check_run_args(args)
    graph = load_graph(args.dataset)
    sources = name_text_sources(graph, descriptions=args.descriptions)
    encoder = _text_encoder(args.encoder, args, None)
    out = Path(args.out)
    cache_dir = _cache_dir(args, out)
    result = extract_text_views(
        sources,
        encoder=encoder,
        entity_names=vocabulary_in_id_order(graph),
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        max_views=args.max_views,
        cache_dir=cache_dir,
        progress=not args.quiet,
        keep_cache=args.keep_cache,
    )
    model = args.model if args.encoder == "tinyclip" else "all-MiniLM-L6-v2"
    provenance = {
        "inputs": f"entity names of {graph.name}" + (" and descriptions" if args.descriptions else ""),
        "model": model,
        "device": str(args.device),
        "entity_order": f"dataset {graph.name}",
    }
    manifest = write_extraction(result, out, dtype=_DTYPES[args.dtype], extra=provenance)
    print(_summary(result, out, manifest))
    return 0


def _suffix_kind(path: Path) -> str | None:
    if path.suffix in (".pth", ".pt", ".pkl", ".pickle"):
        return "momok"
    if path.suffix == ".safetensors":
        return "views"
    return None


def _cmd_convert(args: argparse.Namespace) -> int:
    source, target = Path(args.input), Path(args.output)
    kind = args.to or _suffix_kind(target)
    if kind is None:
        raise ConfigError(f"cannot tell the output kind from {target.name}; pass --to momok or --to views")
    names = entity_order_from_file(args.entities) if args.entities else None
    features = load_features(source, entity_names=names, modality=args.modality, allow_pickle=args.allow_pickle)
    if kind == "momok":
        matrix = views_to_single(features)
        save_momok_features(target, matrix)
        print(f"wrote {target}: {tuple(matrix.shape)} single vectors (mean of each entity's views)")
    else:
        save_view_features(
            target,
            features,
            entity_names=names,
            metadata={"converted_from": source.name},
            dtype=_DTYPES[args.dtype],
        )
        print(f"wrote {target}: {features.modality} views {tuple(features.views.shape)}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    path = Path(args.file)
    features = load_features(path, allow_pickle=args.allow_pickle)
    counts = features.view_counts
    print(f"file: {path}")
    print(f"modality: {features.modality}")
    print(f"views: {tuple(features.views.shape)} (entities, max views, dim)")
    print(
        f"entities with views: {int((counts > 0).sum())} of {features.num_entities}; total views: {int(counts.sum())}"
    )
    histogram = torch.bincount(counts, minlength=features.max_views + 1).tolist()
    print("views per entity: " + ", ".join(f"{k}: {n}" for k, n in enumerate(histogram) if n))
    meta = {k: v for k, v in features.metadata.items()}
    if meta.get("weights") == "random" or meta.get("random_init") == "true":
        print("WARNING: extracted with RANDOM weights; the features are not meaningful")
    print("metadata:")
    for key in sorted(meta):
        print(f"  {key}: {meta[key]}")
    manifest = manifest_path(path)
    if manifest.is_file():
        data = json.loads(manifest.read_text(encoding="utf-8"))
        print(f"manifest: {manifest}")
        print(
            f"  inputs: {data.get('num_inputs')}, encoded: {data.get('num_encoded')}, "
            f"skipped: {data.get('skipped_count')}"
        )
        for reason, count in (data.get("skipped_by_reason") or {}).items():
            print(f"    {reason}: {count}")
    return 0
