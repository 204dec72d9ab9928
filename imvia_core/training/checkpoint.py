"""Crash-safe files: atomic writes, checksummed checkpoints, and recovery of the last good one.

Every file a run writes goes to a temporary file in the same folder, is flushed to disk, and is then renamed over
its target, so a reader never sees half a file. A checkpoint ``ckpt-000120.pt`` has a sidecar ``ckpt-000120.pt.sha256``
written after it; a checkpoint whose sidecar is missing or disagrees (a run killed during the write, a truncated
copy) is reported and skipped in favour of the previous good one.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from imvia_core.errors import InputError

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "read_verified_text",
    "sha256_file",
    "save_checkpoint",
    "load_checkpoint",
    "latest_good_checkpoint",
    "prune_checkpoints",
    "Checkpointer",
    "CorruptCheckpointError",
]

_PATTERN = re.compile(r"^ckpt-(\d+)\.pt$")


class CorruptCheckpointError(InputError):
    """A checkpoint (or another checksummed run file) is truncated, altered, or lacks its checksum."""


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    A ``path`` that exists and is neither a file nor a folder (``/dev/null``, a named pipe) is written into, never
    replaced: renaming over ``/dev/null`` as root would turn it into a regular file for every program.
    """
    path = Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():
        with path.open("wb") as fh:
            fh.write(data)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str, *, checksum: bool = False) -> None:
    """Write ``text`` (UTF-8) atomically; with ``checksum``, then its SHA-256 sidecar ``<path>.sha256``."""
    data = text.encode("utf-8")
    atomic_write_bytes(path, data)
    path = Path(path)
    if checksum and path.is_file():  # no sidecar beside a device or a pipe
        atomic_write_bytes(path.with_name(path.name + ".sha256"), (hashlib.sha256(data).hexdigest() + "\n").encode())


def read_verified_text(path: str | Path) -> str:
    """Read a text file written with ``checksum=True``, checking its sidecar when there is one.

    :raises CorruptCheckpointError: the file is missing or its content disagrees with the sidecar.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CorruptCheckpointError(f"{path}: cannot be read ({err.strerror or err})") from err
    sidecar = path.with_name(path.name + ".sha256")
    if sidecar.is_file():
        expected = sidecar.read_text().strip()
        got = hashlib.sha256(data).hexdigest()
        if got != expected:
            raise CorruptCheckpointError(
                f"{path}: SHA-256 {got[:12]}... does not match {sidecar.name} ({expected[:12]}...)"
            )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CorruptCheckpointError(f"{path}: not UTF-8 text ({err})") from err


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Save ``state`` with :func:`torch.save`, atomically, then its SHA-256 sidecar."""
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    atomic_write_bytes(path, data)
    atomic_write_text(path.with_name(path.name + ".sha256"), hashlib.sha256(data).hexdigest() + "\n")
    return path


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint after checking its SHA-256 sidecar.

    :raises CorruptCheckpointError: the file or its sidecar is missing, or the checksum disagrees, or it does not
        unpickle.
    """
    path = Path(path)
    sidecar = path.with_name(path.name + ".sha256")
    if not path.is_file():
        raise CorruptCheckpointError(f"{path}: checkpoint file is missing")
    if not sidecar.is_file():
        raise CorruptCheckpointError(f"{path}: no checksum file {sidecar.name} (the write did not finish)")
    expected = sidecar.read_text().strip()
    got = sha256_file(path)
    if got != expected:
        raise CorruptCheckpointError(
            f"{path}: SHA-256 {got[:12]}... does not match {sidecar.name} ({expected[:12]}...)"
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # noqa: BLE001
        raise CorruptCheckpointError(f"{path}: cannot be read ({err})") from err


def _numbered(folder: Path) -> list[tuple[int, Path]]:
    found = []
    for p in folder.glob("ckpt-*.pt"):
        m = _PATTERN.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found, reverse=True)


def latest_good_checkpoint(folder: str | Path, *, map_location: str | torch.device = "cpu"):
    """Return ``(path, state)`` of the newest checkpoint in ``folder`` that verifies, or ``(None, None)``.

    Checkpoints that fail verification are reported with a warning and skipped.
    """
    for _, path in _numbered(Path(folder)):
        try:
            return path, load_checkpoint(path, map_location=map_location)
        except CorruptCheckpointError as err:
            warnings.warn(f"skipping damaged checkpoint: {err}", stacklevel=2)
    return None, None


def prune_checkpoints(folder: str | Path, *, keep: int = 2) -> None:
    """Delete all but the ``keep`` newest numbered checkpoints (and their sidecars)."""
    for _, path in _numbered(Path(folder))[keep:]:
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".sha256").unlink(missing_ok=True)


class Checkpointer:
    """A run's checkpoints: the numbered resumable ones (``ckpt-NNNNNN.pt``, newest ``keep`` kept) and ``best.pt``.

    A numbered checkpoint holds the model, both optimizers, the schedule, the random states (torch's, CUDA's and
    the epoch shuffle's), the loop's ``state`` dict and the configuration, so that a resumed run continues exactly
    where it stopped; ``best.pt`` holds the weights of the selected epoch only.

    :param optimizers: a :class:`~imvia_core.training.step.Optimizers`.
    :param shuffle: the generator of the epoch order.
    :param config: the run's configuration as a dict (stored in every numbered checkpoint).
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        model: torch.nn.Module,
        optimizers: Any,
        shuffle: torch.Generator,
        device: torch.device,
        config: dict[str, Any],
        keep: int = 2,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.model, self.optimizers, self.shuffle = model, optimizers, shuffle
        self.device, self.config, self.keep = device, config, keep

    def save(self, state: dict[str, Any]) -> Path:
        """Write ``ckpt-<epoch>.pt`` for ``state["epoch"]`` and delete all but the ``keep`` newest."""
        opt = self.optimizers
        path = save_checkpoint(
            {
                "model": self.model.state_dict(),
                "optimizer": opt.main.state_dict(),
                "aux_optimizer": opt.aux.state_dict() if opt.aux is not None else None,
                "scheduler": opt.scheduler.state_dict(),
                "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
                "rng_shuffle": self.shuffle.get_state(),
                "state": dict(state),
                "config": self.config,
            },
            self.run_dir / f"ckpt-{state['epoch']:06d}.pt",
        )
        prune_checkpoints(self.run_dir, keep=self.keep)
        return path

    def save_best(self, epoch: int) -> Path:
        """Write the current weights as ``best.pt`` (the selected epoch, 1-based)."""
        return save_checkpoint({"model": self.model.state_dict(), "epoch": epoch}, self.run_dir / "best.pt")

    def resume(self) -> tuple[Path | None, dict[str, Any] | None]:
        """Restore everything from the newest good numbered checkpoint; ``(path, state)``, or ``(None, None)``.

        :raises InputError: the checkpoint does not fit the model (feature files or code changed since the start).
        """
        path, ckpt = latest_good_checkpoint(self.run_dir, map_location=self.device)
        if ckpt is None:
            return None, None
        opt = self.optimizers
        try:
            self.model.load_state_dict(ckpt["model"])
            opt.main.load_state_dict(ckpt["optimizer"])
            if opt.aux is not None:
                opt.aux.load_state_dict(ckpt["aux_optimizer"])
            opt.scheduler.load_state_dict(ckpt["scheduler"])
        except (RuntimeError, ValueError, KeyError, TypeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InputError(
                f"{path}: does not fit the model built from config.json ({first[:300]}); were the feature "
                "files or the code changed since the run started? Restore them, or start a new run directory"
            ) from err
        torch.set_rng_state(ckpt["rng_cpu"].cpu())  # checkpoints load onto the run's device
        if self.device.type == "cuda" and ckpt.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng_cuda"].cpu(), self.device)
        self.shuffle.set_state(ckpt["rng_shuffle"].cpu())
        return path, ckpt["state"]
