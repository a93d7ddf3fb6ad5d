"""Multi-process training and testing on machines without CUDA (gloo).

MMEngine 0.10.7 assumes one CUDA device per process as soon as a launcher
other than ``'none'`` is used. Three things then break on a CPU-only machine,
and this module handles each of them without patching MMEngine or torch:

1. **Process-group initialisation.** ``mmengine.dist.init_dist`` (its
   ``_init_dist_pytorch``, ``_init_dist_slurm`` and ``_init_dist_mpi``) calls
   ``torch.cuda.set_device(local_rank)`` before ``init_process_group``. On a
   CPU-only build of torch this raises ``AttributeError: module 'torch._C'
   has no attribute '_cuda_setDevice'``; with a CUDA build but no usable
   device it raises as well (and ``_init_dist_slurm`` divides by
   ``torch.cuda.device_count()``, which is 0). ``Runner.setup_env`` only
   calls ``init_dist`` when ``not mmengine.dist.is_distributed()``, so
   :func:`init_cpu_dist` creates the default process group itself, with the
   ``gloo`` backend, before the runner is built; MMEngine then finds it
   initialised and skips its own initialisation.

2. **The DDP wrapper.** ``Runner.wrap_model`` wraps the model in
   ``MMDistributedDataParallel(device_ids=[int(os.environ['LOCAL_RANK'])])``
   when ``model_wrapper_cfg`` is None, and passes the same ``device_ids`` as a
   default argument to any ``DistributedDataParallel`` subclass named in
   ``model_wrapper_cfg``. torch's DDP refuses ``device_ids`` for a module
   whose parameters are on the CPU. :class:`CPUDistributedDataParallel`
   drops them; :func:`setup_cpu_distributed` selects it through
   ``cfg.model_wrapper_cfg``.

3. **SyncBN.** ``Runner.wrap_model`` reverts ``SyncBatchNorm`` to
   ``BatchNorm`` only when the run is *not* distributed, and torch's
   ``SyncBatchNorm`` raises on CPU tensors (``SyncBatchNorm expected input
   tensor to be on GPU ...``). :class:`CPUDistributedDataParallel` reverts
   it with :func:`mmengine.model.revert_sync_batchnorm` before wrapping and
   logs a warning: batch statistics are then computed per process.

Nothing here changes a run that has CUDA or that is not distributed.

:func:`destroy_dist` ends any distributed run (gloo or NCCL) cleanly;
``tools/train.py`` and ``tools/test.py`` call it when their run is over.
"""
import datetime
import gc
import logging
import os
import subprocess
from typing import Optional

import torch
import torch.distributed as torch_dist
from torch.nn.parallel import DistributedDataParallel
from mmengine.device import get_device
from mmengine.dist import get_rank, get_world_size, is_distributed
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm
from mmengine.registry import MODEL_WRAPPERS


def _sync_bn_types():
    """The SyncBN classes that ``revert_sync_batchnorm`` reverts."""
    types = [torch.nn.SyncBatchNorm]
    try:
        from mmcv.ops import SyncBatchNorm as MMSyncBN
        types.append(MMSyncBN)
    except ImportError:
        pass
    return tuple(types)


def is_cpu_distributed(launcher: str) -> bool:
    """Whether a run with ``launcher`` is distributed without CUDA.

    Args:
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.

    Returns:
        bool: True when ``launcher`` is not ``'none'`` and MMEngine finds no
        accelerator (no CUDA, and no NPU, MLU or MUSA, whose set-up MMEngine
        handles itself), i.e. when :func:`setup_cpu_distributed` has work
        to do.
    """
    return launcher != 'none' and get_device() == 'cpu'


def _set_env_from_launcher(launcher: str, port: Optional[int] = None) -> None:
    """Set ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` for env:// init.

    Mirrors what MMEngine 0.10.7's ``_init_dist_slurm`` and
    ``_init_dist_mpi`` do, minus their CUDA calls. ``torchrun``
    (``launcher='pytorch'``) already sets these variables.
    """
    if launcher == 'pytorch':
        missing = [
            key for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
            if key not in os.environ
        ]
        if missing:
            raise RuntimeError(
                f'--launcher pytorch needs the environment variables '
                f'{", ".join(missing)}; start the script with torchrun '
                '(`python -m torch.distributed.run`) or tools/dist_train.sh')
    elif launcher == 'slurm':
        proc_id = int(os.environ['SLURM_PROCID'])
        ntasks = int(os.environ['SLURM_NTASKS'])
        if port is not None:
            os.environ['MASTER_PORT'] = str(port)
        os.environ.setdefault('MASTER_PORT', '29500')
        if 'MASTER_ADDR' not in os.environ:
            node_list = os.environ['SLURM_NODELIST']
            os.environ['MASTER_ADDR'] = subprocess.getoutput(
                f'scontrol show hostname {node_list} | head -n1')
        os.environ['WORLD_SIZE'] = str(ntasks)
        os.environ['RANK'] = str(proc_id)
        os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    elif launcher == 'mpi':
        os.environ.setdefault('MASTER_PORT', '29500')
        if 'MASTER_ADDR' not in os.environ:
            raise KeyError('The environment variable MASTER_ADDR is not set')
        os.environ['WORLD_SIZE'] = os.environ['OMPI_COMM_WORLD_SIZE']
        os.environ['RANK'] = os.environ['OMPI_COMM_WORLD_RANK']
        os.environ['LOCAL_RANK'] = os.environ['OMPI_COMM_WORLD_LOCAL_RANK']
    else:
        raise ValueError(f'Invalid launcher type: {launcher}')


def init_cpu_dist(launcher: str,
                  backend: str = 'gloo',
                  timeout: Optional[float] = None,
                  port: Optional[int] = None,
                  init_backend: str = 'torch',
                  **kwargs) -> None:
    """Initialise the default process group without touching CUDA.

    Stands in for ``mmengine.dist.init_dist``, which calls
    ``torch.cuda.set_device`` first (see the module docstring). Takes the
    keys of ``cfg.env_cfg.dist_cfg``. Does nothing if the default process
    group already exists.

    Args:
        launcher (str): ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
        backend (str): Backend of ``torch.distributed``; only ``'gloo'``
            works with CPU tensors. Default: ``'gloo'``.
        timeout (float, optional): Collective timeout in seconds, as in
            MMEngine's ``dist_cfg``. Default: None (torch's default).
        port (int, optional): Master port for the slurm launcher, as in
            MMEngine. Default: None.
        init_backend (str): Only ``'torch'`` (MMEngine's default) is
            supported; DeepSpeed and ColossalAI need CUDA.
        **kwargs: Passed on to :func:`torch.distributed.init_process_group`.
    """
    if is_distributed():
        return
    if init_backend != 'torch':
        raise ValueError('CPU distributed runs support only '
                         f"init_backend='torch', got {init_backend!r}")
    _set_env_from_launcher(launcher, port)
    if timeout is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=timeout)
    torch_dist.init_process_group(
        backend=backend,
        init_method='env://',
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        **kwargs)


def destroy_dist(wait_for_peers: bool = True) -> None:
    """Destroy the default process group while Python is fully alive.

    Left to the interpreter's shutdown, the process group goes last, and
    gloo's worker threads may still hold finished work items with tensors
    in them; releasing those then needs a Python that is being torn down,
    and the process aborts (``terminate called without an active
    exception``, SIGABRT) although the run itself finished: torchrun then
    reports the whole run as failed (see pytorch/pytorch PR 179291). torch
    also asks every NCCL run to do this ("process group has NOT been
    destroyed"). MMEngine 0.10.7's runner never destroys the group.

    Call it once the runner is no longer referenced: the DDP-wrapped model
    holds the group too, so the runner is garbage-collected here first.
    Does nothing if no process group exists.

    Args:
        wait_for_peers (bool): Wait at a barrier until every process has
            got here, so that no process leaves while a peer still talks to
            it. Pass False on an error path, where a peer may never arrive.
            Default: True.
    """
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return
    gc.collect()
    if wait_for_peers:
        if torch_dist.get_backend() == 'nccl':
            # the device MMEngine set for this rank, not a guessed one
            torch_dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            torch_dist.barrier()
    torch_dist.destroy_process_group()


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` for models on the CPU.

    ``Runner.wrap_model`` of MMEngine 0.10.7 always passes
    ``device_ids=[LOCAL_RANK]`` to a ``DistributedDataParallel`` subclass,
    which torch rejects for CPU modules; this wrapper ignores them. It also
    reverts ``SyncBatchNorm`` layers to ``BatchNorm``, since torch's
    ``SyncBatchNorm`` has no CPU implementation and MMEngine reverts them
    only for non-distributed runs.

    Args:
        module (nn.Module): Model to wrap, on the CPU.
        device_ids (list[int], optional): Ignored (see above).
        **kwargs: Passed on to :class:`MMDistributedDataParallel`, e.g.
            ``broadcast_buffers``, ``find_unused_parameters``.
    """

    def __init__(self, module, device_ids=None, **kwargs):
        kwargs.pop('output_device', None)
        sync_bn_types = _sync_bn_types()
        num_sync_bn = sum(
            isinstance(m, sync_bn_types) for m in module.modules())
        if num_sync_bn:
            module = revert_sync_batchnorm(module)
            print_log(
                f'{num_sync_bn} SyncBatchNorm layer(s) reverted to BatchNorm: '
                'torch has no CPU SyncBatchNorm, so batch statistics are '
                'computed per process in this CPU distributed run.',
                logger='current',
                level=logging.WARNING)
        super().__init__(module=module, device_ids=None, **kwargs)
        print_log(
            f'CPU distributed data parallel: backend '
            f'{torch_dist.get_backend()}, world size {get_world_size()}, '
            f'rank {get_rank()}.',
            logger='current')


def setup_cpu_distributed(cfg) -> bool:
    """Prepare ``cfg`` and the process group for a CPU distributed run.

    Call it after ``cfg.launcher`` is set and before the runner is built.
    When :func:`is_cpu_distributed` is False it returns at once and changes
    nothing. Otherwise it

    - sets ``cfg.env_cfg.dist_cfg.backend`` to ``'gloo'`` (NCCL needs CUDA)
      and ``cfg.env_cfg.cudnn_benchmark`` to False;
    - selects :class:`CPUDistributedDataParallel` in ``cfg.model_wrapper_cfg``
      in place of MMEngine's default wrapper, keeping the other options (a
      custom ``DistributedDataParallel`` subclass is kept and only given
      ``device_ids=None``; other wrapper types are left alone);
    - initialises the process group with :func:`init_cpu_dist`, so that
      ``Runner.setup_env`` skips MMEngine's CUDA-only ``init_dist``.

    Args:
        cfg (mmengine.Config): The run's config, ``cfg.launcher`` set.

    Returns:
        bool: Whether the run is a CPU distributed one.
    """
    launcher = cfg.get('launcher', 'none')
    if not is_cpu_distributed(launcher):
        return False

    # (ConfigDict.setdefault returns the default, not the stored copy)
    if cfg.get('env_cfg', None) is None:
        cfg.env_cfg = dict()
    env_cfg = cfg.env_cfg
    if env_cfg.get('dist_cfg', None) is None:
        env_cfg.dist_cfg = dict()
    dist_cfg = env_cfg.dist_cfg
    notes = []
    old_backend = dist_cfg.get('backend', 'nccl')
    if old_backend != 'gloo':
        notes.append(f"env_cfg.dist_cfg.backend {old_backend!r} -> 'gloo' "
                     '(no CUDA)')
        dist_cfg['backend'] = 'gloo'
    env_cfg['cudnn_benchmark'] = False

    wrapper_cfg = cfg.get('model_wrapper_cfg', None)
    if wrapper_cfg is None:
        # Same options as MMEngine's default wrapper in Runner.wrap_model.
        cfg.model_wrapper_cfg = dict(
            type='CPUDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    else:
        wrapper_type = wrapper_cfg.setdefault('type',
                                              'MMDistributedDataParallel')
        if isinstance(wrapper_type, str):
            wrapper_type = MODEL_WRAPPERS.get(wrapper_type)
        if wrapper_type is MMDistributedDataParallel:
            wrapper_cfg['type'] = 'CPUDistributedDataParallel'
        elif (isinstance(wrapper_type, type)
              and issubclass(wrapper_type, DistributedDataParallel)
              and not issubclass(wrapper_type, CPUDistributedDataParallel)):
            # a custom DDP subclass: keep it, without device_ids
            wrapper_cfg['device_ids'] = None
            notes.append(f'model_wrapper_cfg type {wrapper_cfg["type"]!r} '
                         'kept with device_ids=None; SyncBN is not reverted '
                         'for it')

    init_cpu_dist(launcher, **dist_cfg)
    if get_rank() == 0:
        print_log(
            f'No CUDA: running distributed on the CPU ({get_world_size()} '
            'processes, gloo)' + ''.join(f'; {note}' for note in notes),
            logger='current',
            level=logging.WARNING if notes else logging.INFO)
    return True
