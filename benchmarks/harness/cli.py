"""Command-line helpers shared by the benchmark and analysis scripts.

The scripts of ``benchmarks/`` and ``tools/analysis/compare_models.py``
report wrong arguments as one line ``error: ...`` with exit status 2 (no
argparse usage dump, no traceback), and hide library notices that say
nothing about the measurement. Standard library only: the light
supervisor processes of ``benchmarks/camvid_experiment.py`` use it
without importing torch or MMSeg.

The installed package's own tools (``tools/train.py``, ``tools/test.py``,
``tools/infer.py``, the converters) do not use it: they run from the
installed package's ``.mim`` folder too, where ``benchmarks/`` is absent.
"""
import argparse
import sys
import warnings

# notices of MMEngine, MMSeg and torch that every run prints
LIBRARY_NOTICES = (
    'pkg_resources is deprecated',
    '``build_loss`` would be',
    'Default ``avg_non_ignore``',
    # MMSeg's ResNet blocks with with_cp=True
    'torch.utils.checkpoint: the use_reentrant parameter',
)


def silence_library_notices():
    """Ignore the warnings of :data:`LIBRARY_NOTICES`."""
    for message in LIBRARY_NOTICES:
        warnings.filterwarnings('ignore', message=message)


def fail(message, status=2):
    """Print ``error: message`` on stderr and exit with ``status``."""
    sys.stderr.write(f'error: {message}\n')
    sys.exit(status)


class OneLineArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that reports wrong arguments with :func:`fail`."""

    def error(self, message):
        fail(message)


def positive_int(text):
    """``argparse`` type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'not an integer: {text!r}')
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be positive: {text!r}')
    return value


def positive_float(text):
    """``argparse`` type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'not a number: {text!r}')
    if not value > 0:
        raise argparse.ArgumentTypeError(f'must be positive: {text!r}')
    return value


def resolve_device(name):
    """``'auto'`` -> ``'cuda'`` when available, else ``'cpu'``; a
    ``'cuda'`` request without CUDA ends with :func:`fail`."""
    import torch
    if name == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if name == 'cuda' and not torch.cuda.is_available():
        fail('--device cuda: CUDA is not available')
    return name
