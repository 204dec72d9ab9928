"""Feature files: the project's multi-view format, the single-vector MoMoK/IMVIA files, and converters between them.

Project format ``imvia-views/1`` (one file per modality, `safetensors <https://github.com/huggingface/safetensors>`_):

* tensor ``views``: shape ``(E, K_max, d)``, float32 (or float16 to halve the size); row ``i`` is entity id ``i``,
  slot ``k`` its ``k``-th view; unused slots are zero.
* tensor ``mask``: shape ``(E, K_max)``, uint8, 1 where a slot holds a real view. An entity without any view of the
  modality has an all-zero row.
* metadata (string -> string): ``format="imvia-views/1"``, ``modality`` (``visual``/``text``), ``num_entities``,
  ``max_views``, ``dim``, ``entity_order_sha256`` (SHA-256 of the entity names joined by ``\\n`` in id order; tells
  which graph the rows belong to), ``encoder``, ``weights`` (SHA-256 of the checkpoint, ``random`` or the pretrained
  tag), ``created`` (UTC, ISO 8601), and whatever else the writer adds (``random_init``, ``normalized``, ...).

Extraction writes a JSON manifest beside each file (``<file>.manifest.json``) with counts, the skipped inputs and
their reasons, and the entity names.

MoMoK/IMVIA single-vector files (``img_features.pth``, ``text_features.pth``: one vector per entity in
``entity2id`` order, written by ``torch.save``; ``img_features.pkl``: the same as a pickled numpy array) are read as
``(E, 1, d)`` views whose mask is 1 where the row is not all zero. Those files fill entities without an image with the
mean image vector, so every entity looks as if it had a view. A ``.pth``/``.pkl`` holding a dict of entity name (or
id) -> vector is accepted too; rows of entities missing from the dict are zero and masked.

Loading never unpickles arbitrary objects unless ``allow_pickle=True``: tensors, numpy arrays, dicts and lists only.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import pickle
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from imvia_core.errors import DataFormatError, InputError
from imvia_core.features.inputs import entity_order_sha256
from imvia_core.types import ModalityFeatures

__all__ = [
    "FORMAT",
    "MODALITIES",
    "save_view_features",
    "load_features",
    "read_file_metadata",
    "manifest_path",
    "views_to_single",
    "single_to_views",
    "save_momok_features",
    "entity_order_sha256",
]

#: value of the ``format`` metadata key of project feature files.
FORMAT = "imvia-views/1"
MODALITIES = ("visual", "text")
_SINGLE_SUFFIXES = (".pth", ".pt", ".pkl", ".pickle")
_STORE_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def manifest_path(path: str | Path) -> Path:
    """The JSON manifest written beside feature file ``path``: ``<path>.manifest.json``."""
    path = Path(path)
    return path.with_name(path.name + ".manifest.json")


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(temp)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def save_view_features(
    path: str | Path,
    features: ModalityFeatures,
    *,
    entity_names: list[str] | None = None,
    metadata: dict | None = None,
    dtype: torch.dtype = torch.float32,
) -> None:
    """Write ``features`` in the project format (atomically: a temporary file in the same folder, then a rename).

    :param path: the ``.safetensors`` file.
    :param features: views ``(E, K, d)`` and mask ``(E, K)``.
    :param entity_names: names in id order; their SHA-256 goes to ``entity_order_sha256``. When left out, the
        value of ``features.metadata["entity_order_sha256"]`` is kept if there is one.
    :param metadata: extra metadata (``encoder``, ``weights``, ...); values that are not strings are stored as JSON.
        Keys of ``features.metadata`` are written too; ``metadata`` wins on conflicts.
    :param dtype: storage type of ``views``: ``torch.float32``, ``torch.float16`` or ``torch.bfloat16``.
    :raises InputError: on a wrong number of entity names, an unknown modality or dtype.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if dtype not in _STORE_DTYPES:
        raise InputError(f"cannot store views as {dtype}; expected one of {_STORE_DTYPES}")
    if features.modality not in MODALITIES:
        raise InputError(f"unknown modality {features.modality!r}; expected one of {MODALITIES}")
    if entity_names is not None and len(entity_names) != features.num_entities:
        raise InputError(
            f"{len(entity_names)} entity names for {features.num_entities} feature rows when writing {path}"
        )
    meta: dict[str, object] = {
        key: value
        for key, value in features.metadata.items()
        if key not in ("source", "source_format") and value is not None
    }
    meta.update(metadata or {})
    if entity_names is not None:
        meta["entity_order_sha256"] = entity_order_sha256(list(entity_names))
    meta.setdefault("encoder", "unknown")
    meta.setdefault("weights", "unknown")
    meta.update(
        {
            "format": FORMAT,
            "modality": features.modality,
            "num_entities": features.num_entities,
            "max_views": features.max_views,
            "dim": features.dim,
            "dtype": str(dtype).removeprefix("torch."),
            "created": _now(),
        }
    )
    text_meta = {str(k): v if isinstance(v, str) else json.dumps(v, default=str) for k, v in meta.items()}
    views = features.views.detach().to("cpu", dtype).contiguous()
    mask = features.mask.detach().to("cpu", torch.uint8).contiguous()
    _atomic_write(path, lambda temp: save_file({"views": views, "mask": mask}, temp, metadata=text_meta))


def read_file_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a ``.safetensors`` feature file, without reading its tensors."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as err:  # safetensors raises its own error types
        raise InputError(f"cannot read {path} as safetensors: {err}") from err


# ----------------------------------------------------------------------------------------------------------- loading


def _numpy_allowlist() -> list:
    from numpy._core import multiarray

    allowed: list = [multiarray._reconstruct, (multiarray._reconstruct, "numpy.core.multiarray._reconstruct")]
    allowed += [np.ndarray, np.dtype, multiarray.scalar, (multiarray.scalar, "numpy.core.multiarray.scalar")]
    allowed += [getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith("DType")]
    return allowed


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles builtins, numpy arrays and dtypes only (what MoMoK's ``.pkl`` feature files hold)."""

    _ALLOWED_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray", "numpy.dtypes", "numpy", "collections")
    _ALLOWED_NAMES = {"_reconstruct", "scalar", "ndarray", "dtype", "OrderedDict"}

    def find_class(self, module: str, name: str):
        if module in self._ALLOWED_MODULES and (name in self._ALLOWED_NAMES or name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _not_torch_file(path: Path) -> str | None:
    """What the start of ``path`` looks like when it is not a ``torch.save`` file (zip or pickle), else ``None``."""
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError:
        return None  # torch.load reports it
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # zip archive (torch >= 1.6) or pickle protocol 2+
        return None
    if not head:
        return "an empty file"
    if head.startswith(b"\x93NUMPY"):
        return "a numpy .npy file (convert it with numpy.load and torch.save)"
    if head.startswith(b"\x89HDF"):
        return "an HDF5 file"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or not all(c.isprintable() or c in "\t\r\n" for c in text):
        return f"binary data starting with bytes {head[:8].hex(' ')}"
    first = text.splitlines()[0] if text.strip() else text
    return f"text starting with {first[:40]!r}"


def _read_single(path: Path, allow_pickle: bool) -> object:
    hint = "; if the file is from a trusted source, load it with allow_pickle=True"
    if path.suffix in (".pkl", ".pickle"):
        try:
            with path.open("rb") as handle:
                if allow_pickle:
                    return pickle.load(handle)
                return _NumpyOnlyUnpickler(handle).load()
        except pickle.UnpicklingError as err:
            raise DataFormatError(
                path, None, f"a pickle that is not plain data ({err})", "a numpy array or dict" + hint
            ) from err
        except (OSError, EOFError, ValueError) as err:
            raise InputError(f"cannot read {path}: {err}") from err
        except Exception as err:  # noqa: BLE001 - a damaged pickle fails in many ways (IndexError, MemoryError, ...)
            raise InputError(f"cannot read {path}: damaged or not a pickle ({type(err).__name__}: {err})") from err
    found = _not_torch_file(path)
    if found is not None:
        raise DataFormatError(
            path, None, found, "a torch.save file (a zip archive or a pickle) holding a (E, d) tensor or a dict of them"
        )
    try:
        if allow_pickle:
            return torch.load(path, map_location="cpu", weights_only=False)
        with torch.serialization.safe_globals(_numpy_allowlist()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[-1][:300]
        raise DataFormatError(
            path, None, f"objects other than tensors and arrays ({first})", "a tensor or dict" + hint
        ) from err
    except (OSError, RuntimeError, EOFError, ValueError) as err:
        raise InputError(f"cannot read {path}: {err}") from err
    except Exception as err:  # noqa: BLE001 - a damaged file fails in many ways (IndexError, KeyError, struct.error)
        raise InputError(f"cannot read {path}: damaged or not a torch.save file ({type(err).__name__}: {err})") from err


def _as_matrix(value: object, path: Path, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
    elif isinstance(value, np.ndarray) or isinstance(value, (list, tuple)):
        try:
            tensor = torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise DataFormatError(path, None, f"{what} that is not numeric ({err})", "numbers") from err
    else:
        raise DataFormatError(path, None, f"{what} of type {type(value).__name__}", "a tensor or numpy array")
    if not (tensor.is_floating_point() or tensor.dtype in (torch.int32, torch.int64)):
        raise DataFormatError(path, None, f"{what} of dtype {tensor.dtype}", "floating-point numbers")
    return tensor.to(torch.float32)


def _dict_to_matrix(
    data: Mapping, path: Path, entity_names: list[str] | None, num_entities: int | None
) -> torch.Tensor:
    keys = list(data.keys())
    if not keys:
        raise DataFormatError(path, None, "an empty dict", "entity -> vector entries")
    vectors = {key: _as_matrix(value, path, f"entry {key!r}").reshape(-1) for key, value in data.items()}
    dims = {v.numel() for v in vectors.values()}
    if len(dims) != 1:
        raise DataFormatError(path, None, f"vectors of sizes {sorted(dims)}", "one size for every entity")
    dim = dims.pop()
    if entity_names is not None:
        index = {name: i for i, name in enumerate(entity_names)}
        rows = {index[k]: v for k, v in vectors.items() if isinstance(k, str) and k in index}
        if not rows:
            raise InputError(
                f"none of the {len(keys)} keys of {path} (e.g. {keys[0]!r}) is an entity name of the dataset"
            )
        count = len(entity_names)
    elif all(isinstance(k, int) or (isinstance(k, str) and k.isdigit()) for k in keys):
        rows = {int(k): v for k, v in vectors.items()}
        count = num_entities if num_entities is not None else max(rows) + 1
        if max(rows) >= count or min(rows) < 0:
            raise DataFormatError(path, None, f"entity id {max(rows)}", f"ids 0..{count - 1}")
    else:
        raise InputError(f"{path} maps entity names to vectors; pass the dataset's entity names to read it")
    matrix = torch.zeros(count, dim)
    for row, vector in rows.items():
        matrix[row] = vector
    return matrix


def single_to_views(
    tensor: torch.Tensor, *, modality: str = "visual", metadata: dict | None = None
) -> ModalityFeatures:
    """One vector per entity ``(E, d)`` -> views ``(E, 1, d)``; the mask is ``True`` where the row is not all zero."""
    if tensor.dim() != 2:
        raise InputError(f"single-vector features must have shape (entities, dim), got {tuple(tensor.shape)}")
    tensor = tensor.float()
    mask = (tensor != 0).any(dim=1, keepdim=True)
    return ModalityFeatures(
        views=tensor.unsqueeze(1).clone(), mask=mask, modality=modality, metadata=dict(metadata or {})
    )


def views_to_single(features: ModalityFeatures) -> torch.Tensor:
    """Mean of the valid views of each entity, shape ``(E, d)``; zero for entities without a view."""
    return features.mean_vectors().float()


def save_momok_features(path: str | Path, tensor: torch.Tensor) -> None:
    """Write one vector per entity ``(E, d)`` as MoMoK/IMVIA read it: ``torch.save`` of a float32 tensor for
    ``.pth``/``.pt``, a pickled float32 numpy array for ``.pkl`` (atomic write)."""
    path = Path(path)
    if tensor.dim() != 2:
        raise InputError(f"MoMoK features must have shape (entities, dim), got {tuple(tensor.shape)}")
    matrix = tensor.detach().to("cpu", torch.float32).contiguous()
    if path.suffix in (".pkl", ".pickle"):

        def write(temp: str) -> None:
            with open(temp, "wb") as handle:
                pickle.dump(matrix.numpy(), handle, protocol=4)

    elif path.suffix in (".pth", ".pt"):

        def write(temp: str) -> None:
            torch.save(matrix, temp)

    else:
        raise InputError(f"{path}: MoMoK feature files end in .pth, .pt or .pkl")
    _atomic_write(path, write)


def _guess_modality(path: Path) -> str | None:
    name = path.name.lower()
    if "img" in name or "image" in name or "visual" in name:
        return "visual"
    if "text" in name or "txt" in name or "desc" in name:
        return "text"
    return None


def _load_views_file(path: Path) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, str]]:
    from safetensors.torch import load_file

    metadata = read_file_metadata(path)
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as err:  # safetensors raises its own error types
        raise InputError(f"cannot read {path} as safetensors: {err}") from err
    if "views" in tensors:
        if "mask" not in tensors:
            raise DataFormatError(path, None, "tensor 'views' without 'mask'", "tensors 'views' and 'mask'")
        return tensors["views"], tensors["mask"], metadata
    if len(tensors) == 1:  # a single matrix saved as safetensors
        (only,) = tensors.values()
        return only, None, metadata
    raise DataFormatError(path, None, f"tensors {sorted(tensors)}", "tensors 'views' and 'mask' (imvia-views/1)")


def load_features(
    path: str | Path,
    *,
    num_entities: int | None = None,
    entity_names: list[str] | None = None,
    modality: str | None = None,
    expected_dim: int | None = None,
    allow_pickle: bool = False,
) -> ModalityFeatures:
    """Read a feature file of any supported format (see the module docstring) and validate it.

    :param path: ``.safetensors`` (project format), ``.pth``/``.pt`` or ``.pkl`` (MoMoK/IMVIA single vectors).
    :param num_entities: expected number of entities.
    :param entity_names: the dataset's entity names in id order: checks the file's ``entity_order_sha256`` (when it
        has one), implies ``num_entities``, and maps dict-form files.
    :param modality: expected modality; a project file of the other modality is an error. For single-vector files it
        is the modality of the result (guessed from the file name when left out: ``img`` -> visual, ``text`` ->
        text).
    :param expected_dim: expected feature dimension.
    :param allow_pickle: unpickle arbitrary objects (trusted files only).
    :return: float32 views and a bool mask; ``metadata`` holds the file's metadata and ``source``.
    :raises InputError: for a missing or unreadable file, features of another dataset or modality.
    :raises DataFormatError: for a wrong shape, entity count, dimension, or NaN/Inf values (naming the entity).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"feature file {path} does not exist")
    if entity_names is not None:
        if num_entities is not None and num_entities != len(entity_names):
            raise InputError(f"num_entities={num_entities} but {len(entity_names)} entity names were given")
        num_entities = len(entity_names)
    if modality is not None and modality not in MODALITIES:
        raise InputError(f"unknown modality {modality!r}; expected one of {MODALITIES}")

    if path.suffix == ".safetensors":
        views, mask, metadata = _load_views_file(path)
        source_format = metadata.get("format", "safetensors")
        file_modality = metadata.get("modality")
        if modality is not None and file_modality is not None and file_modality != modality:
            raise InputError(f"{path} holds {file_modality} features; expected {modality} features")
        expected_order = metadata.get("entity_order_sha256")
        if entity_names is not None and expected_order and expected_order != entity_order_sha256(entity_names):
            raise InputError(
                f"{path} was extracted for another entity list (entity_order_sha256 {expected_order[:12]}... does not "
                f"match this dataset's {entity_order_sha256(entity_names)[:12]}...): features of another dataset, or "
                "an entity2id.txt in another order"
            )
        if mask is None:
            if views.dim() != 2:
                raise DataFormatError(path, None, f"a tensor of shape {tuple(views.shape)}", "shape (entities, dim)")
            single = single_to_views(views, modality=modality or file_modality or "visual")
            views, mask = single.views, single.mask
        chosen = modality or file_modality or _guess_modality(path) or "visual"
    elif path.suffix in _SINGLE_SUFFIXES:
        data = _read_single(path, allow_pickle)
        if isinstance(data, Mapping):
            matrix = _dict_to_matrix(data, path, entity_names, num_entities)
        else:
            matrix = _as_matrix(data, path, "content")
        if matrix.dim() != 2:
            raise DataFormatError(path, None, f"an array of shape {tuple(matrix.shape)}", "shape (entities, dim)")
        chosen = modality or _guess_modality(path) or "visual"
        single = single_to_views(matrix, modality=chosen)
        views, mask, metadata = single.views, single.mask, {}
        source_format = "momok-pkl" if path.suffix in (".pkl", ".pickle") else "momok-pth"
    else:
        raise InputError(f"{path}: unknown feature file type; expected .safetensors, .pth, .pt or .pkl")

    if views.dim() != 3 or mask.dim() != 2 or tuple(mask.shape) != tuple(views.shape[:2]):
        raise DataFormatError(
            path, None, f"views {tuple(views.shape)} and mask {tuple(mask.shape)}", "views (E, K, d) and mask (E, K)"
        )
    if num_entities is not None and views.shape[0] != num_entities:
        raise DataFormatError(
            path,
            None,
            f"features for {views.shape[0]} entities",
            f"{num_entities} entities (the dataset's entity count)",
        )
    if expected_dim is not None and views.shape[2] != expected_dim:
        raise DataFormatError(path, None, f"{views.shape[2]}-dimensional features", f"dimension {expected_dim}")
    views = views.float()
    finite = torch.isfinite(views).flatten(1).all(dim=1)
    if not bool(finite.all()):
        bad = int((~finite).nonzero()[0, 0])
        count = int((~finite).sum())
        who = f"entity {bad}" + (f" ({entity_names[bad]})" if entity_names is not None else "")
        raise DataFormatError(
            path, None, f"NaN or infinite values for {who} ({count} entities in all)", "finite numbers"
        )
    info: dict = dict(metadata)
    info.update({"source": str(path), "source_format": source_format})
    return ModalityFeatures(views=views, mask=mask.bool(), modality=chosen, metadata=info)
