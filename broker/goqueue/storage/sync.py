"""Durability helpers for file-system metadata.

Creating, renaming or deleting a file changes its directory; the change is durable only after the directory itself
is fsynced. Every structural change in the storage engine calls `fsync_directory` afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomically(path: Path, data: bytes) -> None:
    """Write to a temp file, fsync it, rename over `path`, fsync the directory: readers see old or new, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    fsync_directory(path.parent)
