"""Where workloads read and write: a filesystem and root for any fsspec URL."""

from __future__ import annotations

import fsspec


def fs_root(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem behind ``url`` and its path there, with no trailing slash to join onto."""
    fs, root = fsspec.core.url_to_fs(url)
    return fs, root.rstrip("/")


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    """Whether ``fs`` is this machine's own disk, where paths can be opened directly."""
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else fs.protocol
    return "file" in protocols or "local" in protocols
