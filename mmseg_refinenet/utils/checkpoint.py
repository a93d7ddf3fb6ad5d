"""Checkpoint loading that works with torch >= 2.6.

torch 2.6 changed the default of ``torch.load`` to ``weights_only=True``.
MMEngine 0.10.7 calls ``torch.load(filename, map_location=...)`` without the
argument, so resuming (``--resume``) or ``load_from`` a full MMEngine
checkpoint fails: such files hold the optimizer state, the message hub and
numpy objects, which the weights-only unpickler rejects.

:func:`load_local_checkpoint` replaces MMEngine's loader for local paths (the
``''`` scheme of :class:`mmengine.runner.CheckpointLoader`). It loads with
``weights_only=False``, exactly what MMEngine did under torch < 2.6, and turns
a missing or unreadable file into an error that names the file. Importing
``mmseg_refinenet`` (which every config of this project does through
``custom_imports``) installs it, so no environment variable is needed.

Only load checkpoints you trust: like any full pickle, a checkpoint can run
code when it is loaded.
"""
import os.path as osp
import pickle
import zipfile

import torch
from mmengine.runner.checkpoint import CheckpointLoader


def load_local_checkpoint(filename, map_location=None):
    """Load a checkpoint from a local path, full pickles included.

    Args:
        filename (str): Path of the checkpoint file.
        map_location (str | torch.device | None): As in :func:`torch.load`.

    Returns:
        dict | OrderedDict: The loaded object.

    Raises:
        FileNotFoundError: ``filename`` does not exist.
        RuntimeError: the file exists but is not a readable torch
            checkpoint (truncated, corrupt, or another format).
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(
            f'checkpoint file {filename!r} does not exist; check the path '
            'given to load_from / --resume / init_cfg.checkpoint')
    try:
        return torch.load(
            filename, map_location=map_location, weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError,
            zipfile.BadZipFile, ValueError) as err:
        raise RuntimeError(
            f'checkpoint file {filename!r} could not be read ({err}). It is '
            'truncated, corrupt or not a torch checkpoint: delete it and '
            'resume from an earlier checkpoint, or point load_from at a '
            'valid file.') from err


def register_checkpoint_loader():
    """Make :func:`load_local_checkpoint` MMEngine's loader for local files.

    Idempotent; called when ``mmseg_refinenet`` is imported.
    """
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_local_checkpoint, force=True)
