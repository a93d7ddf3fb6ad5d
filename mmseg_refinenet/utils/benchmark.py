"""Measuring segmentors: parameters, FLOPs, speed and training memory.

The functions behind ``tools/analysis/compare_models.py`` and
``benchmarks/benchmark_models.py``; both build every model in one process
and measure it on random inputs of one shape.

* params (M): all parameters of the model, auxiliary heads included.
* GFLOPs (:func:`count_flops`): ``mmengine.analysis.get_model_complexity_info``
  on ``model(x, mode='tensor')`` for one image of 3xHxW, as
  ``tools/analysis_tools/get_flops.py`` of MMSeg does (fvcore's counting:
  one multiply-add is one FLOP; ops it does not know count 0), so the
  figures compare with MMSeg's model zoo.
* latency (ms, :func:`measure_inference`): ``model(x, mode='tensor')`` in
  eval mode under ``torch.no_grad``, after ``warmup`` untimed runs, over
  ``repeats`` timed runs; callers report median, min and max.
* training step (ms, :func:`measure_training`): ``model.loss`` on random
  labels + backward + SGD step in train mode.
* peak training memory (MB): on CUDA ``torch.cuda.max_memory_allocated``
  over the training steps (absolute: weights, gradients, optimiser state
  and activations). On the CPU the peak increase of the process' resident
  set size (psutil, sampled every 2 ms in a background thread) over the
  steps (warm-up included) above the RSS measured just before them, after
  ``gc.collect()`` and glibc's ``malloc_trim(0)`` have returned freed memory
  to the system: gradients, optimiser state and activations, not the
  weights already resident.

Every measurement takes a ``dtype`` (``'fp32'``, or ``'bf16'`` / ``'fp16'``
for automatic mixed precision with ``torch.autocast``; fp16 training uses a
``GradScaler``) and ``channels_last`` (model and input in
``torch.channels_last``), and an optional ``deadline``
(``time.monotonic()`` value) after which no further timed run starts.
:func:`time_limit` adds a hard limit that interrupts a run between two
Python-level operations.

The data preprocessor (normalisation, padding) is not part of the
measurements: the model gets a ready NCHW tensor. MMSeg is imported inside
the functions that need it.
"""
import contextlib
import ctypes
import gc
import logging
import os
import os.path as osp
import platform
import signal
import statistics
import threading
import time
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .provenance import NOT_DIRTYING, git_commit, git_dirty  # noqa: F401

METRICS = [
    # key, label, unit, higher is better
    ('params_m', 'Params', 'M', False),
    ('gflops', 'FLOPs', 'G', False),
    ('latency_ms', 'Latency', 'ms', False),
    ('throughput_img_s', 'Throughput', 'img/s', True),
    ('train_step_ms', 'Train step', 'ms', False),
    ('peak_train_mem_mb', 'Peak train mem', 'MB', False),
]

DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}

# Dense peaks of the GPUs we expect to be lent, as torch names them:
# (TFLOP/s of 16-bit tensor cores, of TF32 tensor cores, GB/s of memory).
# NVIDIA's data sheets; "dense" means without 2:4 sparsity.
DEVICE_PEAKS = {
    'H100 80GB HBM3': (989.4, 494.7, 3350.0),  # H100 SXM5
    'H100 PCIe': (756.0, 378.0, 2000.0),
    'H100 NVL': (835.0, 417.5, 3900.0),
    'H200': (989.4, 494.7, 4800.0),  # H200 SXM
    'H200 NVL': (835.0, 417.5, 4800.0),
    'A100-SXM4-80GB': (312.0, 156.0, 2039.0),
    'A100-SXM4-40GB': (312.0, 156.0, 1555.0),
    'A100 80GB PCIe': (312.0, 156.0, 1935.0),
    'A100-PCIE-40GB': (312.0, 156.0, 1555.0),
}


class BenchmarkError(Exception):
    """A config or model that cannot be measured; the message says why."""


class BudgetExceeded(BaseException):
    """Raised by :func:`time_limit`; a BaseException so that libraries'
    ``except Exception`` clauses do not swallow it."""


# --------------------------------------------------------------------------
# configs and models
# --------------------------------------------------------------------------
def resolve_config(path):
    """Returns the file of ``path``, resolving ``package::rel/path.py``."""
    if '::' in path:
        from mmengine.config.utils import _get_package_and_cfg_path
        from mmengine.utils import get_installed_path, is_installed
        try:
            package, rel = _get_package_and_cfg_path(path)
        except Exception as e:  # malformed scope
            raise BenchmarkError(f'bad config {path!r}: {e}')
        if not is_installed(package):
            raise BenchmarkError(
                f'config {path!r}: package {package!r} is not installed')
        cfg_file = osp.join(get_installed_path(package), '.mim', 'configs',
                            rel)
        if not osp.isfile(cfg_file):
            raise BenchmarkError(
                f'config {path!r} not found (looked for {cfg_file})')
        return cfg_file
    if not osp.isfile(path):
        raise BenchmarkError(f'config file not found: {path}')
    return path


def strip_pretrained(node):
    """Removes pretrained weights and Pretrained init_cfgs in place."""
    if isinstance(node, dict):
        if 'pretrained' in node:
            node['pretrained'] = None
        init = node.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            node['init_cfg'] = None
        elif isinstance(init, list):
            node['init_cfg'] = [
                c for c in init
                if not (isinstance(c, dict) and c.get('type') == 'Pretrained')
            ] or None
        for value in node.values():
            strip_pretrained(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            strip_pretrained(value)


def set_num_classes(model_cfg, num_classes):
    """Sets ``num_classes`` of the decode and auxiliary heads in place."""
    for key in ('decode_head', 'auxiliary_head'):
        heads = model_cfg.get(key)
        if heads is None:
            continue
        for head in heads if isinstance(heads, (list, tuple)) else [heads]:
            head['num_classes'] = num_classes


def load_config(path, num_classes=None):
    """Reads a config file or ``mmseg::`` config; raises BenchmarkError."""
    from mmengine.config import Config
    try:
        cfg = Config.fromfile(resolve_config(path))
    except BenchmarkError:
        raise
    except Exception as e:
        raise BenchmarkError(
            f'cannot read config {path}: {type(e).__name__}: {e}')
    if 'model' not in cfg:
        raise BenchmarkError(f'config {path} has no model')
    if num_classes is not None:
        set_num_classes(cfg.model, num_classes)
    return cfg


def build_model(cfg, path, device, value_checks=False):
    """Builds ``cfg.model`` without pretrained weights, SyncBN as BN, on
    ``device`` (None: where it was built, e.g. under ``FakeTensorMode``).

    Without ``value_checks`` the plugin's NaN / Inf checks of the inputs
    and features (``check_finite`` of the FRRN backbones and the heads) are
    switched off: each is a host-device synchronisation that MMSeg's models
    do not make, so timing them would put a cost on our models only.
    """
    from mmengine.model import revert_sync_batchnorm
    from mmseg.registry import MODELS

    model_cfg = cfg.model
    strip_pretrained(model_cfg)
    try:
        model = MODELS.build(model_cfg)
    except Exception as e:
        raise BenchmarkError(f'cannot build the model of {path}: '
                             f'{type(e).__name__}: {e}')
    model = revert_sync_batchnorm(model)
    if not value_checks:
        for module in model.modules():
            if isinstance(getattr(module, 'check_finite', None), bool):
                module.check_finite = False
    return model if device is None else model.to(torch.device(device))


def model_name(model):
    """E.g. ``EncoderDecoder(ResNet, RefineNetHead)``."""
    parts = [type(model).__name__]
    inner = [type(getattr(model, n)).__name__
             for n in ('backbone', 'decode_head')
             if getattr(model, n, None) is not None]
    if inner:
        parts.append('(' + ', '.join(inner) + ')')
    return ''.join(parts)


def num_classes(model):
    head = getattr(model, 'decode_head', None)
    if isinstance(head, (list, tuple)) or type(head).__name__ in (
            'ModuleList', ):
        head = head[-1]
    return int(getattr(head, 'num_classes', 2) or 2)


def count_params(model):
    """Parameters in millions."""
    return sum(p.numel() for p in model.parameters()) / 1e6


def snapshot_state(model):
    """A copy of ``model``'s state dict in host memory, to restore between
    measurements with ``model.load_state_dict``.

    On the host, not on the model's device: a second copy of the weights
    on the GPU would count in every peak that
    ``torch.cuda.max_memory_allocated`` reports (about 450 MB for
    RefineNet-R101).
    """
    return {key: value.detach().to('cpu', copy=True)
            for key, value in model.state_dict().items()}


def set_with_cp(model, enabled):
    """Switches gradient checkpointing of every module that has it.

    Sets ``with_cp`` of every sub-module that has the attribute (our RUs,
    FRRUs and RCUs, MMSeg's ResNet blocks). Returns how many were set.
    """
    n = 0
    for module in model.modules():
        if hasattr(module, 'with_cp'):
            module.with_cp = bool(enabled)
            n += 1
    return n


# --------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------
def sync(device):
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()


def timed(fn, warmup, repeats, device, deadline=None, finish_warmup=False,
          after_warmup=None):
    """Times ``fn``: ``warmup`` untimed runs, then up to ``repeats`` runs.

    Returns the times in ms. With a ``deadline`` (a ``time.monotonic()``
    value) the warm-up stops at it, unless ``finish_warmup`` (compiled
    code, whose first runs compile and record CUDA graphs: timing one of
    them would record a compilation as a latency), and no timed run starts
    that the last run's duration says would end after it; at least one run
    is timed. ``after_warmup`` is called between the warm-up and the timed
    runs (e.g. to reset a memory peak).
    """
    for _ in range(warmup):
        fn()
        if (not finish_warmup and deadline is not None
                and time.monotonic() >= deadline):
            break
    sync(device)
    if after_warmup is not None:
        after_warmup()
    times = []
    for _ in range(repeats):
        if times and deadline is not None and (
                time.monotonic() + times[-1] / 1000.0 > deadline):
            break
        start = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def spread(times):
    return dict(median=statistics.median(times), min=min(times),
                max=max(times))


@contextlib.contextmanager
def time_limit(seconds):
    """Raises :class:`BudgetExceeded` in the block after ``seconds``.

    Uses ``SIGALRM``, so it interrupts Python code between two operations
    (a running kernel finishes first). A no-op outside the main thread,
    where signals cannot be used, and for ``seconds`` None.
    """
    usable = (seconds is not None and hasattr(signal, 'setitimer')
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def handler(signum, frame):
        raise BudgetExceeded(f'time limit of {seconds:.0f} s reached')

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, max(float(seconds), 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def autocast(device, dtype):
    """``torch.autocast`` for ``'bf16'`` / ``'fp16'``; nothing for fp32."""
    if DTYPES[dtype] is None:
        return contextlib.nullcontext()
    device_type = 'cuda' if str(device).startswith('cuda') else 'cpu'
    return torch.autocast(device_type, dtype=DTYPES[dtype])


def memory_format(channels_last):
    return torch.channels_last if channels_last else torch.contiguous_format


def prepare(model, channels_last):
    """Puts the model's parameters and buffers in the memory format."""
    return model.to(memory_format=memory_format(channels_last))


def make_input(batch, shape, device, channels_last=False):
    x = torch.rand(batch, 3, *shape, device=device)
    return x.contiguous(memory_format=memory_format(channels_last))


def count_flops(model, shape, device):
    """GFLOPs (multiply-adds) of one 3xHxW image, as MMSeg's get_flops."""
    from mmengine.analysis import get_model_complexity_info
    from mmengine.logging import MMLogger
    model.eval()
    x = torch.rand(1, 3, *shape, device=device)
    # mmengine logs every op it cannot count; the summary is enough here.
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with torch.no_grad():
            info = get_model_complexity_info(
                model, inputs=(x, ), show_table=False, show_arch=False)
    finally:
        logger.setLevel(level)
    return info['flops'] / 1e9


def measure_inference(model, shape, batch, warmup, repeats, device,
                      dtype='fp32', channels_last=False, deadline=None,
                      compile_mode=None, compile_backend='inductor'):
    """Times of ``model(x, mode='tensor')`` in eval mode, in ms.

    With ``compile_mode`` (``'default'``, ``'reduce-overhead'``: CUDA
    graphs, ``'max-autotune'``, ``'max-autotune-no-cudagraphs'``) the
    forward is ``torch.compile``'d first, from an empty cache (a cache
    shared across models would hit dynamo's recompile limit and silently
    run eagerly); compiling and, for CUDA graphs, recording happen in the
    warm-up runs, which the caller makes at least 3. ``compile_backend``
    other than inductor (``'aot_eager'``: dynamo and AOT autograd without
    code generation, for tests) ignores the mode. Raises
    :class:`BenchmarkError` when nothing was compiled. The value checks of
    :mod:`mmseg_refinenet.models.utils.checks` are skipped inside compiled
    code, and run in the eager forward.
    """
    model.eval()
    prepare(model, channels_last)
    x = make_input(batch, shape, device, channels_last)

    def forward(inputs):
        return model(inputs, mode='tensor')

    if compile_mode is not None:
        import torch._dynamo as dynamo
        from torch._dynamo.utils import counters
        dynamo.reset()
        counters.clear()
        options = dict(mode=compile_mode) \
            if compile_backend == 'inductor' else {}
        forward = torch.compile(forward, backend=compile_backend, **options)

    def run():
        with torch.no_grad(), autocast(device, dtype):
            forward(x)

    if compile_mode is None:
        return timed(run, warmup, repeats, device, deadline)
    try:
        times = timed(run, warmup, repeats, device, deadline,
                      finish_warmup=True)
        compiled = counters['stats']['unique_graphs']
    finally:
        dynamo.reset()  # frees the compiled code and CUDA graphs
    if not compiled:
        raise BenchmarkError(
            f'torch.compile ({compile_backend}, {compile_mode}) compiled no '
            'graph: the times would be eager ones')
    return times


def best_throughput(model, shape, batches, warmup, repeats, device,
                    dtype='fp32', channels_last=False, deadline=None,
                    progress=None):
    """Inference throughput for growing batches; the best one wins.

    Tries ``batches`` in order and stops at the first that runs out of
    memory, that the time left cannot hold (predicted from the previous
    batch), or after two batches in a row without a gain of 2 %.

    Returns:
        dict: ``throughput_img_s`` (best), ``batch`` (its batch),
        ``times`` (its times in ms), ``by_batch`` ({batch: img/s}) and
        ``stopped`` (why the sweep ended early, or None).
    """
    best = None
    by_batch = {}
    stopped = None
    no_gain = 0
    last_ms = prev_batch = None
    for batch in batches:
        if deadline is not None and last_ms is not None and (
                time.monotonic() + last_ms * (batch / prev_batch) *
                (warmup + repeats) / 1000.0 > deadline):
            stopped = f'batch {batch}: predicted to exceed the time budget'
            break
        times = error = None
        try:
            times = measure_inference(model, shape, batch, warmup, repeats,
                                      device, dtype, channels_last, deadline)
        except Exception as e:
            # another error than OOM ends the sweep too, with the batches
            # measured so far (e.g. a kernel's int32 index limit at a large
            # batch); only a sweep with none re-raises it
            if not is_oom(e) and best is None:
                raise
            error = ('out of memory' if is_oom(e) else
                     f'{type(e).__name__}: {str(e).strip()[:200]}')
        if times is None:  # the exception's frames are gone
            free_memory(device)
            stopped = f'batch {batch}: {error}'
            break
        med = statistics.median(times)
        ips = batch / (med / 1000.0)
        by_batch[batch] = ips
        if progress:
            progress(f'batch {batch}: {ips:.2f} img/s')
        if best is None or ips > best['throughput_img_s'] * 1.02:
            no_gain = 0
        else:
            no_gain += 1
        if best is None or ips > best['throughput_img_s']:
            best = dict(throughput_img_s=ips, batch=batch, times=times)
        last_ms, prev_batch = med, batch
        if no_gain >= 2:
            stopped = f'no gain from batch {batch}'
            break
    if best is None:
        raise RuntimeError(stopped or 'no batch size could be measured')
    best.update(by_batch=by_batch, stopped=stopped)
    return best


# --------------------------------------------------------------------------
# memory
# --------------------------------------------------------------------------
def is_oom(error):
    """Whether ``error`` says that a device or the host ran out of memory."""
    oom_type = getattr(torch.cuda, 'OutOfMemoryError', None)
    if oom_type is not None and isinstance(error, oom_type):
        return True
    if isinstance(error, MemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and (
        'out of memory' in text or "can't allocate memory" in text
        or 'not enough memory' in text)


def trim_cpu_memory():
    """Collects garbage and returns glibc's free heap to the system."""
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def free_memory(device):
    trim_cpu_memory()
    if str(device).startswith('cuda'):
        torch.cuda.empty_cache()


class RSSPeak:
    """Samples the process' RSS in a background thread; keeps the peak."""

    def __init__(self, interval=0.002):
        import psutil
        self.process = psutil.Process(os.getpid())
        self.interval = interval
        self.peak = self.baseline = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def increase_mb(self):
        return (self.peak - self.baseline) / 2**20


def make_seg_samples(batch, shape, classes, device):
    """Random labels as SegDataSamples, one per image."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    h, w = shape
    samples = []
    for _ in range(batch):
        sample = SegDataSample()
        sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w),
                                 pad_shape=(h, w)))
        sample.gt_sem_seg = PixelData(data=torch.randint(
            0, classes, (1, h, w), device=device))
        samples.append(sample)
    return samples


def step_optimizer(params):
    """The optimiser of the measured training steps: SGD with momentum 0.9
    and learning rate 0.

    The step's arithmetic (momentum buffers, update) runs in full, so time
    and memory are those of a real step, but the weights stay as built:
    repeating the step on one batch cannot diverge. At learning rate 1e-3
    RefineNet-R101 with the benchmark's untrained weights (no
    ``init_weights``, no pretrained backbone; initial loss about 20) reached
    NaN by the fourth step on one batch, which stopped its measurement.
    """
    return torch.optim.SGD(params, lr=0.0, momentum=0.9)


def settle_grad_scaler(step, scaler, max_steps=16, deadline=None):
    """Runs ``step`` until ``scaler`` (a ``GradScaler``) no longer skips it.

    A ``GradScaler`` starts at a scale of 65536; while the scaled gradients
    overflow it skips the optimizer step and halves the scale. Returns the
    number of steps run, the last one not skipped, or None when
    ``max_steps`` (or the ``deadline``) came first.
    """
    for count in range(1, max_steps + 1):
        before = scaler.get_scale()
        step()
        if scaler.get_scale() >= before:
            return count
        if deadline is not None and time.monotonic() >= deadline:
            break
    return None


def measure_training(model, shape, batch, warmup, repeats, device,
                     dtype='fp32', channels_last=False, deadline=None):
    """Training steps: times in ms, peak memory in MB and how it was taken.

    A step is ``model.loss`` (under autocast for bf16 / fp16), backward
    (through a ``GradScaler`` for fp16) and an SGD step with momentum
    (:func:`step_optimizer`: learning rate 0). For fp16 the scaler is
    settled first (:func:`settle_grad_scaler`): a step it skips makes no
    optimizer step and no momentum buffers, which would make the step
    faster and the peak smaller than a real one.

    Returns:
        tuple: (times in ms, peak memory in MB, memory method).
    """
    classes = num_classes(model)
    prepare(model, channels_last)
    x = make_input(batch, shape, device, channels_last)
    samples = make_seg_samples(batch, shape, classes, device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = step_optimizer(params)
    cuda = str(device).startswith('cuda')
    scaler = None
    if dtype == 'fp16':
        scaler = torch.amp.GradScaler('cuda' if cuda else 'cpu')
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            losses = model.loss(x, samples)
            loss, _ = model.parse_losses(losses)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

    try:
        if scaler is not None:
            settle_grad_scaler(step, scaler, deadline=deadline)
        if cuda:
            # the peak of the timed steps: reset after the warm-up, whose
            # first step also holds cuDNN's algorithm search workspaces
            torch.cuda.empty_cache()
            times = timed(step, warmup, repeats, device, deadline,
                          after_warmup=torch.cuda.reset_peak_memory_stats)
            peak = torch.cuda.max_memory_allocated() / 2**20
            method = ('torch.cuda.max_memory_allocated (absolute) over the '
                      'steps after the warm-up')
        else:
            trim_cpu_memory()
            with RSSPeak() as rss:
                times = timed(step, warmup, repeats, device, deadline)
            peak = rss.increase_mb
            method = ('peak RSS increase over pre-training RSS (psutil, '
                      '2 ms)')
    finally:
        optimizer.zero_grad(set_to_none=True)  # frees the gradients
    return times, peak, method


def measure_with_cp(model, shape, batch, warmup, repeats, device,
                    dtype='fp32', channels_last=False, deadline=None):
    """Training step time and peak memory with ``with_cp`` off and on.

    Returns:
        dict: ``{False: (times, peak_mb, method), True: (...)}``; the
        model's ``with_cp`` flags are restored afterwards.
    """
    saved = {m: m.with_cp for m in model.modules() if hasattr(m, 'with_cp')}
    if not saved:
        raise BenchmarkError(
            f'{model_name(model)} has no module with a with_cp switch')
    results = {}
    try:
        for enabled in (False, True):
            set_with_cp(model, enabled)
            free_memory(device)
            results[enabled] = measure_training(
                model, shape, batch, warmup, repeats, device, dtype,
                channels_last, deadline)
    finally:
        for module, value in saved.items():
            module.with_cp = value
    return results


def limit_cpu_memory(fraction=0.9):
    """Caps the address space so that a too-large allocation raises.

    Without a cap, an allocation beyond the machine's memory gets the
    process killed by the kernel's OOM killer, losing the run; with it,
    PyTorch raises "can't allocate memory", which :func:`is_oom` catches.
    The cap is the current virtual size plus ``fraction`` of the memory
    available now. Only for CPU runs (CUDA reserves huge virtual ranges).

    Returns:
        int | None: the cap in bytes, or None where it cannot be set.
    """
    try:
        import psutil
        import resource
    except ImportError:
        return None
    vms = psutil.Process(os.getpid()).memory_info().vms
    cap = int(vms + fraction * psutil.virtual_memory().available)
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (ValueError, OSError):
        return None
    return cap


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


# --------------------------------------------------------------------------
# low precision on the CPU, roofline
# --------------------------------------------------------------------------
def cpu_lowp_slowdown(dtype, channels_last):
    """How much slower a 3x3 convolution runs under CPU autocast.

    Times a 64-channel 3x3 convolution on 1x64x64x64 in fp32 and under
    ``torch.autocast('cpu', dtype)``; CPUs without native bf16 / fp16
    instructions (AVX512-BF16, AMX, AVX512-FP16) fall back to slow kernels.

    Returns:
        float: time under autocast / time in fp32.
    """
    conv = torch.nn.Conv2d(64, 64, 3, padding=1)
    x = torch.rand(1, 64, 64, 64)
    if channels_last:
        conv = conv.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def median_ms(name):
        def run():
            with torch.no_grad(), autocast('cpu', name):
                conv(x)
        return statistics.median(timed(run, 1, 3, 'cpu'))

    return median_ms(dtype) / median_ms('fp32')


class _TrafficMode(TorchDispatchMode):
    """Counts the bytes every ATen op reads and writes (views excluded)."""

    def __init__(self):
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if getattr(func, 'is_view', False) or func.__name__.startswith(
                ('empty', 'detach', 'alias', 'lift_fresh')):
            return out
        for tree in (args, kwargs, out):
            for t in tree_flatten(tree)[0]:
                if isinstance(t, torch.Tensor):
                    self.bytes += t.numel() * t.element_size()
        return out


def forward_cost(model, shape, device, dtype='fp32', channels_last=False):
    """FLOPs and memory traffic of one eval forward of a 3xHxW image.

    FLOPs are ``torch.utils.flop_counter`` counts (two per multiply-add,
    convolutions and matrix products only); bytes are the sizes of every
    ATen op's inputs and outputs, i.e. the traffic of an unfused eager
    run (a fused kernel moves less). Together they give the roofline
    bound ``max(flops / peak FLOP/s, bytes / peak bandwidth)``.

    Returns:
        dict: ``flops``, ``bytes``.
    """
    from torch.utils.flop_counter import FlopCounterMode
    model.eval()
    prepare(model, channels_last)
    x = make_input(1, shape, device, channels_last)
    traffic = _TrafficMode()
    with torch.no_grad(), autocast(device, dtype):
        with FlopCounterMode(display=False) as counter, traffic:
            model(x, mode='tensor')
    return dict(flops=float(counter.get_total_flops()),
                bytes=float(traffic.bytes))


def device_peaks(device_name, dtype):
    """(peak TFLOP/s, peak GB/s) of a known GPU for ``dtype``, else None.

    fp32 counts TF32 tensor cores: PyTorch runs fp32 convolutions in TF32
    by default (``torch.backends.cudnn.allow_tf32``).
    """
    if not device_name:
        return None
    # the longest name that matches: 'H200 NVL' before 'H200'
    for key in sorted(DEVICE_PEAKS, key=len, reverse=True):
        if key in device_name:
            half, tf32, bandwidth = DEVICE_PEAKS[key]
            return (half if dtype in ('bf16', 'fp16') else tf32), bandwidth
    return None


# --------------------------------------------------------------------------
# torch.compile
# --------------------------------------------------------------------------
def graph_breaks(fn, *args, **kwargs):
    """Runs ``torch._dynamo.explain`` on ``fn(*args, **kwargs)``.

    Returns:
        dict: ``graphs`` (number of graphs), ``breaks`` (number of graph
        breaks) and ``reasons`` (one line per break: the reason and the
        innermost user frame).
    """
    import torch._dynamo as dynamo
    dynamo.reset()
    explanation = dynamo.explain(fn)(*args, **kwargs)
    reasons = []
    for reason in explanation.break_reasons:
        where = ''
        stack = getattr(reason, 'user_stack', None) or []
        if stack:
            frame = stack[-1]
            where = f' at {frame.filename}:{frame.lineno} ({frame.name})'
        text = str(reason.reason).strip().splitlines()[0]
        reasons.append(text + where)
    return dict(graphs=explanation.graph_count,
                breaks=explanation.graph_break_count, reasons=reasons)


def eager_and_compiled_gradients(module, inputs, backend='inductor'):
    """Gradients of ``sum(module(*inputs) ** 2)``, eager and compiled.

    Runs the forward and backward pass in train mode on two deep copies of
    ``module`` (so that a running statistic updated by one run cannot
    change the other), one as it is and one through ``torch.compile`` with
    ``backend``, each from fresh leaf copies of ``inputs``. Dynamo's
    caches are reset afterwards.

    Returns:
        tuple: ``(names, eager, compiled)``: the names of the gradients
        (``input.0``, ... then the parameters' names) and two lists of
        gradient tensors in that order (``None`` where a tensor got none).
    """
    import copy

    import torch._dynamo as dynamo
    names = [f'input.{i}' for i in range(len(inputs))]
    names += [name for name, _ in module.named_parameters()]
    results = []
    for compiled in (False, True):
        mod = copy.deepcopy(module).train()
        leaves = [t.detach().clone().requires_grad_() for t in inputs]
        fn = torch.compile(mod, backend=backend) if compiled else mod
        fn(*leaves).float().square().sum().backward()
        results.append([t.grad for t in leaves] +
                       [p.grad for p in mod.parameters()])
    dynamo.reset()
    return names, results[0], results[1]


def compiled_gradient_error(module, inputs, backend='inductor'):
    """How far ``torch.compile``'s gradients of ``module`` are from eager.

    The error of one gradient is ``max|compiled - eager| / max|eager|``;
    a gradient missing on one side only counts as 1. TF32 is off during
    the runs, so that on a GPU both sides run full fp32 convolutions.

    Returns:
        dict: ``max_rel_error`` (the largest error over the inputs' and
        parameters' gradients), ``worst`` (its gradient's name) and
        ``wrong_fraction`` (the fraction of that gradient's elements off
        by more than 1e-3 of its largest magnitude).
    """
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.allow_tf32, matmul.allow_tf32
    cudnn.allow_tf32 = matmul.allow_tf32 = False
    try:
        names, eager, compiled = eager_and_compiled_gradients(
            module, inputs, backend)
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = saved
    worst = dict(max_rel_error=0.0, worst=None, wrong_fraction=0.0)
    for name, e, c in zip(names, eager, compiled):
        if e is None and c is None:
            continue
        if e is None or c is None:
            error, wrong = 1.0, 1.0
        else:
            e, c = e.detach().double(), c.detach().double()
            scale = e.abs().max().clamp_min(1e-30)
            diff = (c - e).abs()
            error = (diff.max() / scale).item()
            wrong = (diff > 1e-3 * scale).double().mean().item()
        if error > worst['max_rel_error'] or worst['worst'] is None:
            worst = dict(max_rel_error=error, worst=name,
                         wrong_fraction=wrong)
    return worst


# --------------------------------------------------------------------------
# environment
# --------------------------------------------------------------------------
def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device):
    if str(device).startswith('cuda'):
        return torch.cuda.get_device_name(torch.device(device))
    return 'cpu'


def environment(device, repo=None, check_dirty=True):
    """What a result depends on, for every record."""
    import mmcv
    import mmengine
    import mmseg
    info = dict(
        device=device_name(device),
        cpu=cpu_name(),
        torch=torch.__version__,
        cuda=torch.version.cuda if str(device).startswith('cuda') else None,
        mmseg=mmseg.__version__,
        mmcv=mmcv.__version__,
        mmengine=mmengine.__version__,
        python=platform.python_version(),
        threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(),
    )
    if str(device).startswith('cuda'):
        info.update(
            cudnn=torch.backends.cudnn.version(),
            cudnn_benchmark=torch.backends.cudnn.benchmark,
            allow_tf32=torch.backends.cudnn.allow_tf32)
    if repo is not None:
        info['commit'] = git_commit(repo)
        info['dirty'] = git_dirty(repo) if check_dirty else None
    return info
