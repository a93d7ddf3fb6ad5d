from .checkpoint import (UntrustedCheckpointError, checkpoint_globals,
                         config_trusts_checkpoint, globals_in_pickle,
                         is_trusted_checkpoint, load_local_checkpoint,
                         register_checkpoint_loader, trusted_checkpoints)
from .strict_loading import (CheckpointMismatchError, check_state_dict_fits,
                             load_checkpoint_strict)
from .dist import (CPUDistributedDataParallel, destroy_dist, init_cpu_dist,
                   is_cpu_distributed, setup_cpu_distributed)

__all__ = [
    'CheckpointMismatchError', 'UntrustedCheckpointError',
    'check_state_dict_fits', 'checkpoint_globals', 'config_trusts_checkpoint',
    'globals_in_pickle', 'is_trusted_checkpoint',
    'load_checkpoint_strict', 'load_local_checkpoint',
    'register_checkpoint_loader', 'trusted_checkpoints',
    'CPUDistributedDataParallel', 'destroy_dist', 'init_cpu_dist',
    'is_cpu_distributed', 'setup_cpu_distributed'
]
