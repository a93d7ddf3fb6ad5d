"""The one-line errors of ``mmseg_refinenet/utils/cli.py`` for the scripts
of this folder, loaded by the file's path.

These scripts run on the lent GPU machine before MMSeg is installed there
(``docs/gpu_runbook.md``), where ``import mmseg_refinenet.utils.cli`` would
fail: it runs the package's ``__init__``, which imports torch and MMSeg.
``cli.py`` itself needs only the standard library. The scripts import this
module as ``from device_cli import cli``: run as ``python
tools/device/X.py``, their own folder is first on ``sys.path``.
"""
import importlib.util
import os.path as osp

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

_spec = importlib.util.spec_from_file_location(
    'mmseg_refinenet_cli', osp.join(REPO, 'mmseg_refinenet', 'utils',
                                    'cli.py'))
cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cli)
