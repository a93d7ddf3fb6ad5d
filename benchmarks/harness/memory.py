"""Training memory without training: estimates on fake tensors, and the
bytes that one call keeps alive for the backward pass."""
import contextlib
import gc
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .measure import make_input, make_seg_samples, step_optimizer
from .segmentors import BenchmarkError, build_model, num_classes, set_with_cp


@contextlib.contextmanager
def _fixed_shape_accuracy():
    """Swaps MMSeg's ``accuracy`` in the decode heads for a fixed-shape one.

    MMSeg's keeps the pixels that are not ``ignore_index`` by boolean
    indexing, an output whose size depends on the labels, which fake tensors
    do not have. This one computes the same percentage with the same
    temporaries (top-k of the logits, a comparison map) and fixed shapes.
    """
    import mmseg.models.decode_heads.decode_head as decode_head

    def accuracy(pred, target, topk=1, thresh=None, ignore_index=None):
        _, label = pred.topk(1, dim=1)
        valid = target != ignore_index
        correct = label[:, 0].eq(target) & valid
        return correct.sum() * 100.0 / valid.sum().clamp(min=1)

    original = decode_head.accuracy
    decode_head.accuracy = accuracy
    try:
        yield
    finally:
        decode_head.accuracy = original


def estimate_training_memory(cfg, path, shape, batch, with_cp=False,
                             module_depth=3):
    """Peak memory of training steps, without running them.

    Builds the model and runs two training steps, as
    :func:`measure_training` does (loss on random labels, backward, SGD
    with momentum; fp32, NCHW), on fake tensors (PyTorch's
    ``FakeTensorMode``: shapes, dtypes and storages, no data and no
    arithmetic) under PyTorch's ``MemTracker``, which follows every tensor
    storage from its creation to its release. The peak is over both steps,
    so it includes the optimiser state the first step creates. It takes
    seconds at any input size, on any machine.

    What it leaves out of a GPU's ``torch.cuda.max_memory_allocated``:
    cuDNN workspaces and the allocator's rounding of blocks to 512 bytes.
    Checked against real CPU tensors at 128x256 (RefineNet-R101, batch 2:
    the same 1437 MiB), not yet against a GPU. The value checks of our
    models are skipped on fake tensors, which have no values.

    Args:
        cfg (Config): From :func:`load_config`.
        path (str): The config's path, for messages.
        shape (tuple[int, int]): Input (H, W).
        batch (int): Training batch.
        with_cp (bool): Set every ``with_cp`` switch of the model.
        module_depth (int): Report the modules down to this depth (1: the
            backbone and the heads; 2: their children...). Default: 3.

    Returns:
        dict: ``peak_mb``; ``by_kind_mb`` (parameters, gradients,
        optimiser state, activations, temporaries, buffers and other at the
        peak); ``modules_mb``: for each module down to ``module_depth``,
        the memory its forward pass adds (what it keeps for the backward
        pass, and its output), in forward order.
    """
    try:
        from torch._subclasses.fake_tensor import FakeTensorMode
        from torch.distributed._tools.mem_tracker import (MemTracker,
                                                          _ModState)
    except ImportError as e:
        raise BenchmarkError(
            'the memory estimate needs FakeTensorMode and MemTracker '
            f'(PyTorch 2.5 or later); this PyTorch has not: {e}')
    with FakeTensorMode(), _fixed_shape_accuracy():
        model = build_model(cfg, path, None)
        if with_cp:
            set_with_cp(model, True)
        model.train()
        x = make_input(batch, shape, 'cpu')
        samples = make_seg_samples(batch, shape, num_classes(model), 'cpu')
        optimizer = step_optimizer(model.parameters())
        tracker = MemTracker()
        tracker.track_external(model, optimizer, x)
        with tracker:
            for step in range(2):
                if step:
                    # MemTracker keeps per-module figures of one step
                    tracker.reset_mod_stats()
                # through __call__, so that the tracker sees the modules
                losses = model(x, samples, mode='loss')
                loss, _ = model.parse_losses(losses)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        peak = tracker.get_tracker_snapshot('peak')
    mib = 2**20
    by_kind = {}
    for snapshot in peak.values():  # one device: the CPU
        for kind, nbytes in snapshot.items():
            name = getattr(kind, 'value', kind)
            by_kind[name] = by_kind.get(name, 0) + nbytes / mib
    modules = []
    for stats in tracker.memory_tracking.values():
        name = stats.mod_fqn
        depth = name.count('.')
        before = stats.snapshots.get(_ModState.PRE_FW)
        after = stats.snapshots.get(_ModState.POST_FW)
        if 0 < depth <= module_depth and before and after:
            grown = sum(after[-1][dev]['Total'] - before[-1][dev]['Total']
                        for dev in after[-1]) / mib
            modules.append((name.split('.', 1)[1], round(grown, 1)))
    return dict(peak_mb=by_kind.pop('Total'),
                by_kind_mb={k: round(v, 1) for k, v in by_kind.items()},
                modules_mb=modules)


def kept_bytes(fn, *tracked):
    """``fn()`` and the bytes of the tensors it leaves alive.

    Counts, with PyTorch's ``MemTracker`` (every tensor storage from its
    creation to its release), what exists after ``fn()`` and did not
    before: its output, and what autograd keeps for the backward pass,
    the inputs that gradient checkpointing keeps included (which
    ``saved_tensors_hooks`` do not see). Real tensors, any device.

    Args:
        fn (callable): What to run, without arguments. Modules must be
            called through ``__call__`` (the tracker follows the module
            tree, and a module called twice outside any parent fails).
        *tracked: Modules and tensors that exist before ``fn()`` (passed to
            ``MemTracker.track_external``).

    Without ``MemTracker`` (PyTorch < 2.5) the same is counted from the
    operators' outputs (:class:`_NewStorageMode`).

    Returns:
        tuple: ``fn()``'s result and the bytes (int).
    """
    try:
        from torch.distributed._tools.mem_tracker import MemTracker
    except ImportError:
        return _kept_bytes_from_outputs(fn)
    tracker = MemTracker()
    tracker.track_external(*tracked)

    def total():
        snapshot = tracker.get_tracker_snapshot('current')
        return sum(dev['Total'] for dev in snapshot.values())

    with tracker:
        before = total()
        out = fn()
        return out, total() - before


class _NewStorageMode(TorchDispatchMode):
    """Records, as weak references, the operators' output tensors whose
    storage the operator allocated (not one of its inputs' storages, as
    views and in-place operators return)."""

    def __init__(self):
        super().__init__()
        self.new_storages = set()
        self.outputs = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = {
            _storage_key(t)
            for t in tree_flatten((args, kwargs))[0]
            if isinstance(t, torch.Tensor)
        }
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                key = _storage_key(t)
                if key not in inputs:
                    self.new_storages.add(key)
                self.outputs.append(weakref.ref(t))
        return out


def _storage_key(t):
    storage = t.untyped_storage()
    return storage.device, storage.data_ptr()


def _kept_bytes_from_outputs(fn):
    """:func:`kept_bytes` without ``MemTracker``: the bytes of the storages
    that operators allocated during ``fn()`` and that a live tensor still
    uses (autograd keeps a tensor's Python object alive while it keeps the
    tensor)."""
    mode = _NewStorageMode()
    with mode:
        out = fn()
    gc.collect()
    kept = {}
    for ref in mode.outputs:
        t = ref()
        if t is not None:
            key = _storage_key(t)
            if key in mode.new_storages and key[1] != 0:
                kept[key] = t.untyped_storage().nbytes()
    return out, sum(kept.values())
