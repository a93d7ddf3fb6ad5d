from .checkpoint import (CheckpointMismatchError, check_state_dict_fits,
                         load_checkpoint_strict, load_local_checkpoint,
                         register_checkpoint_loader)
from .dist import (CPUDistributedDataParallel, destroy_dist, init_cpu_dist,
                   is_cpu_distributed, setup_cpu_distributed)

__all__ = [
    'CheckpointMismatchError', 'check_state_dict_fits',
    'load_checkpoint_strict', 'load_local_checkpoint',
    'register_checkpoint_loader', 'CPUDistributedDataParallel', 'destroy_dist',
    'init_cpu_dist', 'is_cpu_distributed', 'setup_cpu_distributed'
]
