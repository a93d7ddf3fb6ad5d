"""Installs ``mmseg_refinenet``, the RefineNet / FRRN plugin for MMSeg 1.x.

Only what MMSegmentation 1.2.2 itself requires is pinned: mmcv must be a
*full* build (with ``mmcv._ext``) in ``[2.0.0rc4, 2.2.0)`` and mmengine below
1.0. torch is deliberately not listed so that pip never replaces the torch
build (CPU or CUDA) that is already installed.
"""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))
MIM_FILES = ('model-index.yml', 'configs', 'tools')


def read_version():
    namespace = {}
    with open(osp.join(osp.dirname(__file__), 'mmseg_refinenet',
                       'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


def add_mim_extension():
    """Copy ``model-index.yml``, ``configs`` and ``tools`` into
    ``mmseg_refinenet/.mim`` when a wheel or sdist is built, as MMSeg does,
    so that ``mim search mmseg_refinenet`` and ``mim train mmseg_refinenet``
    find them in a regular install. Editable installs leave the package
    untouched (mim cannot locate an editable package; use the repository's
    files directly)."""
    if not any(cmd in sys.argv
               for cmd in ('bdist_wheel', 'sdist', 'install', 'build')):
        return
    mim_dir = osp.join(HERE, 'mmseg_refinenet', '.mim')
    if osp.isdir(mim_dir):
        shutil.rmtree(mim_dir)
    os.makedirs(mim_dir)
    for name in MIM_FILES:
        src = osp.join(HERE, name)
        if osp.isdir(src):
            shutil.copytree(
                src,
                osp.join(mim_dir, name),
                ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        elif osp.isfile(src):
            shutil.copyfile(src, osp.join(mim_dir, name))


add_mim_extension()

setup(
    name='mmseg-refinenet',
    version=read_version(),
    description='RefineNet and FRRN for MMSegmentation 1.x',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmseg_refinenet', 'mmseg_refinenet.*']),
    package_data={
        'mmseg_refinenet':
        ['.mim/model-index.yml', '.mim/configs/**/*', '.mim/tools/**/*']
    },
    python_requires='>=3.8',
    install_requires=[
        'mmsegmentation>=1.0.0,<2.0.0',
        'mmcv>=2.0.0rc4,<2.2.0',
        'mmengine>=0.7.0,<1.0.0',
    ],
    extras_require={
        'tests': [
            'pytest', 'h5py', 'scipy', 'onnx', 'onnxruntime', 'onnxscript',
            'model-index'
        ],
        'onnx': ['onnx', 'onnxruntime', 'onnxscript'],
        'converters': ['h5py', 'scipy'],  # NYUDv2 / SUN RGB-D .mat files
    },
    license='Apache License 2.0',
    zip_safe=False,
)
