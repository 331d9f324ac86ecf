"""Files the tool writes whole, made so that nobody else's file is written through: a new file of a random
name beside the target (O_CREAT | O_EXCL, so never through a symlink someone planted, nor into a file someone
made in advance), written, flushed to disk and renamed over the target (a symlink there is replaced, never
followed). Used by the result files (``v2x.run.results.write_atomic``), the recordings (``v2x.run.record``),
the files of ``v2x secure init`` (``v2x.net.secure``) and the signing keys of outside actors
(``v2x.run.runner``). Attack reviews 2 and 3 had a planted symlink overwrite its target with each of them."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _current_umask()  # (read once at import: os.umask can only be read by setting it)


def temp_beside(path: Path, mode: int | None = None) -> tuple[int, Path]:
    """A new empty file of a random name in ``path``'s folder (``.<name>.<random>.tmp``), to be written and
    then renamed over ``path``: its descriptor (open to write) and its path. Made by mkstemp (O_CREAT |
    O_EXCL); ``mode`` as given (0o600: the owner's only), else 0644 less the umask, as readable as any file
    written."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644 & ~UMASK if mode is None else mode)  # (mkstemp makes it 0600)
    except BaseException:
        os.close(fd)
        os.unlink(name)
        raise
    return fd, Path(name)


def replace_whole(path: Path, data: bytes, mode: int | None = None) -> Path:
    """``path`` written whole or not at all (``temp_beside``, flushed to disk, renamed over ``path``). On any
    error (a full disk: OSError ENOSPC) the old file is left as it was, the temporary file is removed and the
    error raised."""
    fd, tmp = temp_beside(path, mode)
    try:
        with open(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def not_secret(path: Path) -> str | None:
    """Why the file ``path`` is not one to take a secret from, or None: not a regular file (a symlink neither),
    another user's, or readable or writable by others than its owner (as ssh refuses a private key): a worker
    key, a fleet's login. ``OSError`` when it cannot be looked at (missing, no permission)."""
    st = path.lstat()
    if not stat.S_ISREG(st.st_mode):
        return f"{path}: not a regular file"
    if st.st_uid != os.geteuid():
        return f"{path}: belongs to another user (uid {st.st_uid})"
    if st.st_mode & 0o077:
        return f"{path}: others may read or write it (mode {stat.filemode(st.st_mode)}); chmod 600 {path}"
    return None


def not_private(folder: Path) -> str | None:
    """Why ``folder`` (which exists) is no place for secrets, or None: another user owns it (they could swap
    the files in it for their own, or read what they then hold), or anyone may write to it (``o+w``). A
    folder writable by its group is accepted: with user-private groups (a user's own group, umask 002) that
    is how folders are made."""
    st = folder.stat()
    if st.st_uid != os.geteuid():
        return f"{folder} belongs to another user (uid {st.st_uid}); use a folder of your own"
    if st.st_mode & stat.S_IWOTH:
        return f"{folder} may be written by any user (mode {stat.filemode(st.st_mode)}); use a folder of your own"
    return None


def read_regular(path: Path, limit: int) -> bytes | None:
    """The first ``limit`` bytes of ``path`` if it is a regular file (a symlink to one counts), else None: a
    FIFO, a device or a socket, which is looked at without waiting (opened non-blocking, then fstat: opening
    a FIFO to read waits for a writer for good) and never read. OSError if it cannot be opened. (The rule of
    ``v2x.run.results.regular_size``, for the layers that may not import v2x.run: scenario files, the files of
    ``v2x secure init``.)"""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return stream.read(limit)


def folder_problem(path: Path) -> str | None:
    """Why files cannot be written into the folder ``path`` (made with its parents when missing), or None.
    Tried, not guessed (root may write anywhere by its permissions, yet not into /proc): a temporary file in
    it, or, when it is missing, a temporary folder in its nearest existing parent, removed at once; so a
    command refuses an ``--out`` it could not write before it runs rather than after (fuzz review 25)."""
    try:
        if path.is_dir():
            with tempfile.TemporaryFile(dir=path):
                return None
        if path.exists() or path.is_symlink():
            return "not a folder"
        parent = next(p for p in path.absolute().parents if p.exists())
        if not parent.is_dir():
            return f"{parent} is not a folder"
        os.rmdir(tempfile.mkdtemp(dir=parent))
    except OSError as exc:
        return f"cannot make or write a folder there: {exc.strerror or exc}"
    return None


def file_problem(path: Path) -> str | None:
    """Why the file ``path`` cannot be written whole (a new file beside it, renamed over it), or None: tried
    with a temporary file in its folder, removed at once. A device or FIFO there is written into (as
    ``v2x.run.results.write_atomic`` does): no problem."""
    try:
        if path.is_dir():
            return "a folder, not a file"
        if path.exists() and not path.is_file():
            return None
        if not path.parent.is_dir():
            return f"no folder {path.parent}"
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as exc:
        return f"cannot write there: {exc.strerror or exc}"
    return None
