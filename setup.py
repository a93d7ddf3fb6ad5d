"""The one step of the build that pyproject.toml cannot declare: copy the
model index, the configs and the user tools into ``mmseg_refinenet/.mim``
before a wheel is built, as MMSegmentation does, so that ``mim search
mmseg_refinenet`` and ``mim train mmseg_refinenet CONFIG`` find them in a
regular install. Everything else (metadata, dependencies, package data) is
in pyproject.toml.

The sdist carries these files at the top level (MANIFEST.in lists the same
set), so a wheel built from the sdist, as ``python -m build`` does, gets the
same ``.mim`` as one built from the repository.
"""
import os
import os.path as osp
import shutil
import sys

from setuptools import setup

HERE = osp.dirname(osp.abspath(__file__))
# relative to the repository root; MANIFEST.in lists the same files
MIM_FILES = (
    'model-index.yml',
    'configs',
    'tools/train.py',
    'tools/test.py',
    'tools/infer.py',
    'tools/dist_train.sh',
    'tools/dist_test.sh',
    'tools/model_converters',
    'tools/dataset_converters',
    'tools/deployment',
    'tools/analysis/plot_curves.py',
)
# the setup.py commands that build a wheel or install without one
BUILD_COMMANDS = ('bdist_wheel', 'build', 'build_py', 'install')


def add_mim_extension():
    """Fill ``mmseg_refinenet/.mim`` with :data:`MIM_FILES` for a wheel (or
    a legacy install). Editable installs and sdists leave it alone (mim
    cannot find an editable package; use the repository's files)."""
    if not any(cmd in sys.argv for cmd in BUILD_COMMANDS):
        return
    missing = [name for name in MIM_FILES
               if not osp.exists(osp.join(HERE, name))]
    if missing:
        raise FileNotFoundError(
            f'cannot build mmseg_refinenet/.mim: {", ".join(missing)} '
            f'missing under {HERE}. Build from a clone of the repository '
            'or from its sdist (MANIFEST.in puts them there).')
    mim_dir = osp.join(HERE, 'mmseg_refinenet', '.mim')
    if osp.isdir(mim_dir):
        shutil.rmtree(mim_dir)
    for name in MIM_FILES:
        src = osp.join(HERE, name)
        dst = osp.join(mim_dir, name)
        os.makedirs(osp.dirname(dst), exist_ok=True)
        if osp.isdir(src):
            shutil.copytree(
                src, dst,
                ignore=shutil.ignore_patterns('__pycache__', '*.py[cod]'))
        else:
            shutil.copyfile(src, dst)


add_mim_extension()
setup()
