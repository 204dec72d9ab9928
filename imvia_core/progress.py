"""Progress bars that honour ``TQDM_DISABLE`` even where a caller asks for a bar explicitly."""

from __future__ import annotations

import os

__all__ = ["bars_disabled"]


def bars_disabled(progress: bool = True) -> bool:
    """``True`` when no bar should be drawn: the caller said so, or ``TQDM_DISABLE`` is set to a true value."""
    return not progress or os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes", "on")
