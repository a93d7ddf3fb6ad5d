"""Capture and restore the global random number generators of a process.

MMEngine seeds torch, numpy and Python's ``random`` once, when the runner is
built, and does not save their states in checkpoints: a resumed run draws
dropout masks (and anything else random outside the data pipeline) from a
freshly seeded stream. :class:`~mmseg_refinenet.engine.AtomicCheckpointHook`
saves these states with every checkpoint and restores them on resume.
"""
import random
from typing import Any, Dict

import numpy as np
import torch


def get_rng_states() -> Dict[str, Any]:
    """The states of Python's, numpy's, torch's CPU and (when available)
    every CUDA device's global generator, as a picklable dict."""
    states = dict(
        python=random.getstate(),
        numpy=np.random.get_state(),
        torch=torch.get_rng_state())
    if torch.cuda.is_available():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: Dict[str, Any]) -> None:
    """Restore states returned by :func:`get_rng_states`.

    Tensors may come back on another device (``Runner.resume`` maps the
    checkpoint to the current device); CUDA states are restored for the
    devices that exist.
    """
    random.setstate(states['python'])
    np.random.set_state(states['numpy'])
    torch.set_rng_state(states['torch'].cpu())
    if 'cuda' in states and torch.cuda.is_available():
        count = torch.cuda.device_count()
        for device, state in enumerate(states['cuda'][:count]):
            torch.cuda.set_rng_state(state.cpu(), device)
