"""Expanding files and folders into the entries a command reads, so that no entry vanishes.

`iter_entries` yields every entry under the inputs exactly once, as `Entry(path, skip)`: `skip` is None for
a file to read, or the reason it is not read. The rules:
* an input given by name that is not a folder is always read (if it cannot be, its reader reports an
  error for it: a missing file, a dangling link, a text file named on the command line);
* folders are walked recursively, children sorted by name; a file whose suffix is one of `suffixes` is
  read, links to files included (a dangling or looping link is read too, and fails with its reason);
* everything else inside a folder is skipped with a reason: other suffixes, links to folders (not
  followed, which rules out loops; give the link as an input to walk it), and special files (FIFOs,
  sockets, devices), which could block a reader forever.
`iter_image_files` is the plain iterator of paths to read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
PYRAMID_SUFFIXES = (".safetensors", ".npz")


class Entry(NamedTuple):
    """One entry of the inputs: a path to read (`skip` None) or one that is not read, and why."""

    path: Path
    skip: str | None = None


def iter_entries(inputs: Iterable[str | Path], suffixes: Iterable[str] = IMAGE_SUFFIXES) -> Iterator[Entry]:
    """Every entry under `inputs`, once, in order (see the module doc for what is read and what skipped)."""
    wanted = tuple(s.lower() for s in suffixes)
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            yield from _walk(p, wanted)
        else:
            yield Entry(p)


def iter_image_files(inputs: Iterable[str | Path], suffixes: Iterable[str] = IMAGE_SUFFIXES) -> Iterator[Path]:
    """The paths to read: files given by name as they are, and the image files under folders."""
    return (e.path for e in iter_entries(inputs, suffixes) if e.skip is None)


def _walk(root: Path, suffixes: tuple[str, ...]) -> Iterator[Entry]:
    """Depth first, children sorted by name; a stack rather than recursion, so any depth is walked."""
    listing = _list(root)
    if listing is None:  # an unreadable folder: read it, and its reader says why it cannot be
        yield Entry(root)
        return
    stack = [iter(listing)]
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
            continue
        path = Path(child.path)
        try:
            is_link = child.is_symlink()
            st = os.stat(child.path) if is_link else child.stat(follow_symlinks=False)
        except OSError:  # a dangling or looping link
            yield Entry(path) if path.suffix.lower() in suffixes else Entry(path, _other(path, "broken link, "))
            continue
        if stat.S_ISDIR(st.st_mode):
            if is_link:
                yield Entry(path, "link to a folder (not followed; give it as an input to read it)")
            elif (listing := _list(path)) is None:
                yield Entry(path)
            else:
                stack.append(iter(listing))
        elif not stat.S_ISREG(st.st_mode):
            yield Entry(path, "not a regular file (a FIFO, socket or device)")
        elif path.suffix.lower() in suffixes:
            yield Entry(path)
        else:
            yield Entry(path, _other(path))


def _list(folder: Path) -> list[os.DirEntry] | None:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda c: c.name)
    except OSError:
        return None


def _other(path: Path, prefix: str = "") -> str:
    suffix = path.suffix or "no suffix"
    return f"{prefix}not a file type read here ({suffix})"


def unreadable_reason(path: Path) -> str | None:
    """Why `path` is not a regular file that can be opened, or None; asked before `open` (a FIFO would block)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            return f"dangling symbolic link (its target {os.readlink(path)} does not exist)"
        return "no such file"
    except OSError as e:  # ELOOP (a symbolic link loop), EACCES, ENAMETOOLONG, ...
        return f"cannot open ({e.strerror or e})"
    if stat.S_ISDIR(st.st_mode):
        return "is a folder that cannot be listed"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a FIFO, socket or device)"
    return None
