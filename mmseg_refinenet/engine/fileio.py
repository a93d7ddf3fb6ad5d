"""Atomic file writes for checkpoints.

MMEngine's ``LocalBackend.put`` opens the final path with ``'wb'``
(truncating it) and writes into it; a process killed while writing leaves a
truncated file under the final name, and nothing is flushed to disk. Here
every write goes to a temporary file next to the target (a hidden
``.<name>.<random>.partial``), is flushed and ``fsync``-ed, and is then
renamed onto the target with :func:`os.replace`, which is atomic on POSIX
and Windows; the directory is ``fsync``-ed afterwards so that the rename
survives a power loss. The target therefore holds either its old content
or the complete new content, never a part. A kill during the write leaves
only the ``.partial`` file, which :func:`remove_partial_files` clears.
"""
import contextlib
import glob
import os
import os.path as osp
import uuid
from typing import List, Union

from mmengine.fileio import LocalBackend, register_backend

PARTIAL_SUFFIX = '.partial'


def _fsync_dir(dirname: str) -> None:
    """Persist a rename in ``dirname`` (a no-op where directories cannot be
    opened, e.g. on Windows)."""
    try:
        fd = os.open(dirname, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(filepath: Union[str, os.PathLike],
                 data: Union[bytes, str]) -> None:
    """Write ``data`` to ``filepath`` atomically and durably.

    Args:
        filepath (str | PathLike): The target file; its folder is created
            if needed.
        data (bytes | str): The content (``str`` is written as UTF-8).

    On any error (or a ``KeyboardInterrupt``) the temporary file is removed
    and ``filepath`` keeps its previous content.
    """
    if isinstance(data, str):
        data = data.encode('utf-8')
    filepath = osp.abspath(os.fspath(filepath))
    dirname, basename = osp.split(filepath)
    os.makedirs(dirname, exist_ok=True)
    partial = osp.join(dirname,
                       f'.{basename}.{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}')
    # 0o666 minus the umask: the same permissions as open(filepath, 'wb')
    fd = os.open(partial,
                 os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(
                     os, 'O_BINARY', 0), 0o666)
    try:
        try:
            view = memoryview(data)
            while view:  # os.write may write fewer bytes than asked
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, filepath)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(partial)
        raise
    _fsync_dir(dirname)


def remove_partial_files(dirname: str) -> List[str]:
    """Remove the temporary files that killed :func:`atomic_write` calls
    left in ``dirname``; returns their paths."""
    removed = []
    for path in glob.glob(osp.join(glob.escape(dirname),
                                   '.*' + PARTIAL_SUFFIX)):
        with contextlib.suppress(OSError):
            os.remove(path)
            removed.append(path)
    return sorted(removed)


class AtomicLocalBackend(LocalBackend):
    """MMEngine's local file backend with atomic :meth:`put` and
    :meth:`put_text` (see :func:`atomic_write`).

    Registered as ``'atomic_local'``: ``backend_args=dict(
    backend='atomic_local')`` selects it wherever MMEngine takes
    ``backend_args`` (``Runner.save_checkpoint``, ``CheckpointHook``).
    """

    def put(self, obj: bytes, filepath: Union[str, os.PathLike]) -> None:
        atomic_write(filepath, obj)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, os.PathLike],
                 encoding: str = 'utf-8') -> None:
        atomic_write(filepath, obj.encode(encoding))


register_backend('atomic_local', AtomicLocalBackend, force=True)
