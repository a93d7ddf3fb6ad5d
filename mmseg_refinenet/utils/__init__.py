from .checkpoint import load_local_checkpoint, register_checkpoint_loader
from .dist import (CPUDistributedDataParallel, init_cpu_dist,
                   is_cpu_distributed, setup_cpu_distributed)

__all__ = [
    'load_local_checkpoint', 'register_checkpoint_loader',
    'CPUDistributedDataParallel', 'init_cpu_dist', 'is_cpu_distributed',
    'setup_cpu_distributed'
]
