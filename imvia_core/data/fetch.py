"""Download a known dataset into the data directory and verify every file against its SHA-256.

Source of the files, first match wins:

1. ``mirror=`` (``imvia data fetch --mirror DIR_OR_URL``), else
2. the environment variable ``IMVIA_DATA_MIRROR``, else
3. the commit-pinned public URLs of :mod:`imvia_core.data.registry`.

A mirror is a folder or a base URL (``http://``, ``https://`` or ``file://``) laid out as ``<NAME>/<FILE>``, e.g.
``<mirror>/DB15K/train.txt`` and ``<mirror>/DB15K/derived/entity_names.tsv``. Files of ``derived/`` (readable
names) have no public source and are fetched only from a mirror; when the mirror lacks them they are skipped.

Each file is written to ``<FILE>.part`` and renamed into place only after its checksum matched, so an interrupted
or corrupted download never passes for a complete file. A file already present with the right checksum is not
downloaded again.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from imvia_core import paths
from imvia_core.data.registry import DatasetFile, DatasetInfo, get_dataset
from imvia_core.errors import ChecksumError, InputError

__all__ = [
    "MIRROR_ENV",
    "FileStatus",
    "sha256_of",
    "resolve_mirror",
    "file_status",
    "dataset_status",
    "fetch_dataset",
]

logger = logging.getLogger(__name__)

#: environment variable naming a mirror folder or base URL.
MIRROR_ENV = "IMVIA_DATA_MIRROR"

_CHUNK = 1 << 20
_TIMEOUT_S = 60.0


class _NotFound(Exception):
    """The source has no such file (HTTP 404 or a missing file in a mirror folder)."""


@dataclass(frozen=True)
class FileStatus:
    """State of one dataset file on disk.

    :param file: registry entry.
    :param path: where it belongs.
    :param state: ``"ok"`` (present, checksum matches), ``"missing"`` or ``"corrupt"`` (checksum differs).
    """

    file: DatasetFile
    path: Path
    state: str


def sha256_of(path: str | Path) -> str:
    """SHA-256 of a file, lower-case hex."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_mirror(mirror: str | os.PathLike | None) -> str | None:
    """The mirror to use: ``mirror`` if given, else ``$IMVIA_DATA_MIRROR``, else ``None`` (public source).

    :return: a base URL (``http(s)://...``) or an absolute folder path, or ``None``.
    :raises InputError: when the mirror is a folder that does not exist.
    """
    value = os.fspath(mirror) if mirror is not None else os.environ.get(MIRROR_ENV, "")
    value = value.strip()
    if not value:
        return None
    scheme = urllib.parse.urlsplit(value).scheme.lower()
    if scheme in ("http", "https"):
        return value.rstrip("/")
    if scheme == "file":
        value = urllib.request.url2pathname(urllib.parse.urlsplit(value).path)
    folder = Path(value).expanduser()
    if not folder.is_dir():
        origin = "--mirror" if mirror is not None else MIRROR_ENV
        raise InputError(
            f"mirror folder {folder} ({origin}) does not exist; expected a folder laid out as <NAME>/<FILE> "
            "or an http(s):// base URL"
        )
    return str(folder.resolve())


def _source_of(info: DatasetInfo, entry: DatasetFile, mirror: str | None) -> str | None:
    """URL or folder path of ``entry``; ``None`` when no source offers it (a non-public file without mirror)."""
    if mirror is None:
        return info.public_url(entry.path) if entry.public else None
    if "://" in mirror:
        return f"{mirror}/{urllib.parse.quote(info.name)}/{urllib.parse.quote(entry.path)}"
    return str(Path(mirror, info.name, *entry.path.split("/")))


def file_status(info: DatasetInfo, *, root: Path, skip: tuple[str, ...] = ()) -> list[FileStatus]:
    """Check every file of ``info`` under ``root`` (the dataset folder) against its checksum.

    :param skip: paths (as in ``info.files``) to leave out: neither checked nor read.
    """
    result = []
    for entry in info.files:
        if entry.path in skip:
            continue
        target = root.joinpath(*entry.path.split("/"))
        if not target.is_file():
            state = "missing"
        else:
            state = "ok" if sha256_of(target) == entry.sha256 else "corrupt"
        result.append(FileStatus(file=entry, path=target, state=state))
    return result


def dataset_status(name: str, *, data_dir: str | Path | None = None) -> str:
    """``"complete"`` (every file verified), ``"ready"`` (required files verified, some optional missing),
    ``"incomplete"`` (some required file missing or corrupt) or ``"absent"`` (nothing there)."""
    info = get_dataset(name)
    root = Path(data_dir) if data_dir is not None else paths.data_dir()
    states = file_status(info, root=root / info.name)
    if all(s.state == "missing" for s in states):
        return "absent"
    if all(s.state == "ok" for s in states):
        return "complete"
    if all(s.state == "ok" for s in states if s.file.required):
        return "ready"
    return "incomplete"


def _copy_into(source: str, handle) -> None:
    """Stream ``source`` (URL or folder path) into the open binary ``handle``."""
    if "://" not in source:
        try:
            with open(source, "rb") as src:
                shutil.copyfileobj(src, handle, _CHUNK)
        except FileNotFoundError as err:
            raise _NotFound(source) from err
        return
    request = urllib.request.Request(source, headers={"User-Agent": "imvia-core"})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            shutil.copyfileobj(response, handle, _CHUNK)
    except urllib.error.HTTPError as err:
        if err.code in (404, 410):
            raise _NotFound(source) from err
        raise


def _download(info: DatasetInfo, entry: DatasetFile, source: str, target: Path, *, retries: int, backoff: float):
    """Download ``source`` to ``target`` through ``target.part``, retrying on network errors and bad checksums."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    attempts = max(1, retries)
    last_error: Exception | None = None
    got = ""
    for attempt in range(1, attempts + 1):
        try:
            with part.open("wb") as handle:
                _copy_into(source, handle)
            got = sha256_of(part)
            if got == entry.sha256:
                os.replace(part, target)
                return
            last_error = None
            logger.warning("%s/%s: checksum mismatch (attempt %d of %d)", info.name, entry.path, attempt, attempts)
        except _NotFound:
            part.unlink(missing_ok=True)
            raise
        except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as err:
            last_error = err
            logger.warning("%s/%s: %s (attempt %d of %d)", info.name, entry.path, err, attempt, attempts)
        finally:
            part.unlink(missing_ok=True)  # gone after a successful rename; a failed attempt leaves nothing behind
        if attempt < attempts and backoff > 0:
            time.sleep(backoff * attempt)
    if last_error is not None:
        raise InputError(
            f"could not download {info.name}/{entry.path} from {source} after {attempts} attempts: {last_error}"
        ) from last_error
    raise ChecksumError(
        f"{info.name}/{entry.path} from {source}: expected SHA-256 {entry.sha256}, got {got} "
        f"(after {attempts} attempts); the source holds a different file"
    )


def fetch_dataset(
    name: str,
    *,
    dest_root: str | Path | None = None,
    mirror: str | os.PathLike | None = None,
    retries: int = 3,
    backoff: float = 1.0,
    progress: bool = True,
) -> Path:
    """Download every file of a known dataset into ``<dest_root>/<NAME>/`` and verify its SHA-256.

    :param name: ``DB15K``, ``MKG-W`` or ``MKG-Y`` (case-insensitive).
    :param dest_root: data directory; default :func:`imvia_core.paths.data_dir` (``data/`` or ``$IMVIA_DATA_DIR``).
    :param mirror: folder or base URL laid out as ``<NAME>/<FILE>``; default ``$IMVIA_DATA_MIRROR``, else the
        public source.
    :param retries: attempts per file on network errors and checksum mismatches.
    :param backoff: seconds to wait after the first failed attempt (times the attempt number afterwards).
    :param progress: show a progress bar over files.
    :return: the dataset folder ``<dest_root>/<NAME>``.
    :raises InputError: a required file is missing at the source (HTTP 404 or not in the mirror folder; the
        message names the URL or path) or cannot be downloaded.
    :raises ChecksumError: a file still differs from its expected SHA-256 after ``retries`` attempts (the message
        names the file and both sums); nothing is left in its place.
    """
    info = get_dataset(name)
    source_root = resolve_mirror(mirror)
    root = (Path(dest_root) if dest_root is not None else paths.data_dir()) / info.name
    statuses = file_status(info, root=root)
    bar = tqdm(statuses, desc=f"fetch {info.name}", unit="file", **({} if progress else {"disable": True}))
    try:
        for status in bar:
            entry = status.file
            if status.state == "ok":
                continue
            source = _source_of(info, entry, source_root)
            if source is None:  # side information without a mirror: nothing to fetch it from
                if status.state == "corrupt":
                    raise ChecksumError(
                        f"{status.path}: expected SHA-256 {entry.sha256}, got {sha256_of(status.path)}; delete it or "
                        f"fetch it again with --mirror / {MIRROR_ENV}"
                    )
                logger.info("%s/%s: only available from a mirror; skipped", info.name, entry.path)
                continue
            bar.set_postfix_str(entry.path)
            if status.state == "corrupt":
                logger.warning("%s: checksum differs from %s; downloading it again", status.path, entry.sha256)
                status.path.unlink()
            try:
                _download(info, entry, source, status.path, retries=retries, backoff=backoff)
            except _NotFound as err:
                if not entry.required:
                    logger.warning("%s/%s: not in the mirror (%s); skipped", info.name, entry.path, source)
                    continue
                raise InputError(
                    f"{info.name}/{entry.path}: no such file at {source}; expected the source to hold "
                    f"<NAME>/<FILE> for every file of {info.name}"
                ) from err
    finally:
        bar.close()
    return root
