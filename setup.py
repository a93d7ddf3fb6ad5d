"""Installs ``mmseg_refinenet``, the RefineNet / FRRN plugin for MMSeg 1.x.

Only what MMSegmentation 1.2.2 itself requires is pinned: mmcv must be a
*full* build (with ``mmcv._ext``) in ``[2.0.0rc4, 2.2.0)`` and mmengine below
1.0. torch is deliberately not listed so that pip never replaces the torch
build (CPU or CUDA) that is already installed.
"""
import os.path as osp

from setuptools import find_packages, setup


def read_version():
    namespace = {}
    with open(osp.join(osp.dirname(__file__), 'mmseg_refinenet',
                       'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


setup(
    name='mmseg-refinenet',
    version=read_version(),
    description='RefineNet and FRRN for MMSegmentation 1.x',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmseg_refinenet', 'mmseg_refinenet.*']),
    python_requires='>=3.8',
    install_requires=[
        'mmsegmentation>=1.0.0,<2.0.0',
        'mmcv>=2.0.0rc4,<2.2.0',
        'mmengine>=0.7.0,<1.0.0',
    ],
    extras_require={
        'tests': ['pytest', 'h5py', 'scipy'],
        'converters': ['h5py', 'scipy'],  # NYUDv2 / SUN RGB-D .mat files
    },
    license='Apache License 2.0',
    zip_safe=False,
)
