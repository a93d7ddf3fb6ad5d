"""Shared plumbing of the dataset converters in ``tools/dataset_converters``.

Every converter writes MMSeg's layout all-or-nothing: it checks the output
folder first (:func:`check_out_dir`), builds the result in a hidden folder
next to it and renames that into place only when every file converted
(:func:`staged_output`).
"""
import contextlib
import importlib
import os
import os.path as osp
import shutil
import tempfile
from typing import Iterator, Sequence


def require(module: str, package: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f'this converter needs the "{package}" package: '
                          f'pip install {package}') from None


def check_out_dir(out_dir: str, sources: Sequence[str],
                  overwrite: bool) -> None:
    for src in sources:
        src = osp.abspath(src)
        if osp.commonpath([src, out_dir]) == out_dir:
            raise ValueError(f'output folder {out_dir} contains the input '
                             f'{src}; choose another output folder')
    if osp.exists(out_dir):
        if not osp.isdir(out_dir):
            raise ValueError(f'output path {out_dir} exists and is not a '
                             'folder')
        if os.listdir(out_dir) and not overwrite:
            raise ValueError(f'output folder {out_dir} is not empty '
                             '(pass --overwrite to replace it)')


@contextlib.contextmanager
def staged_output(out_dir: str) -> Iterator[str]:
    """Yield a temporary folder next to ``out_dir``; on success it replaces
    ``out_dir``, on any error it is removed with every folder it created."""
    parent = osp.dirname(out_dir)
    created = parent
    while not osp.exists(osp.dirname(created)):
        created = osp.dirname(created)
    created = None if osp.exists(created) else created
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{osp.basename(out_dir)}.partial-',
                           dir=parent)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        if osp.isdir(out_dir):
            shutil.rmtree(out_dir)
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
