"""Training machinery: checkpoints that survive a kill and resume exactly.

Importing it registers :class:`AtomicCheckpointHook` in MMSeg's ``HOOKS``
and the ``'atomic_local'`` file backend in MMEngine's.
"""
from .fileio import AtomicLocalBackend, atomic_write, remove_partial_files
from .hooks import AtomicCheckpointHook
from .random_state import get_rng_states, set_rng_states

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'atomic_write',
    'remove_partial_files', 'get_rng_states', 'set_rng_states'
]
