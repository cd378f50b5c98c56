"""Atomic file writes: write to a temporary file in the same folder, then rename over the target.

A crash or a kill mid-write leaves either the old file or the new one, never a torn file. The new
file gets the usual permissions of a newly created file (``0o666 & ~umask``), not the private
``0o600`` of a temporary file.
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

_UMASK_LOCK = threading.Lock()


def _new_file_mode() -> int:
    """``0o666 & ~umask``: what ``open(path, "w")`` would give a new file."""
    with _UMASK_LOCK:  # the umask can only be read by setting it; put it back at once
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, fsync, then rename to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes 0600; give the permissions a plain open() would
        if hasattr(os, "fchmod"):
            os.fchmod(fd, _new_file_mode())
        else:
            os.chmod(tmp, _new_file_mode())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` made atomic."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())
