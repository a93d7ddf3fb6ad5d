"""Timing segmentors: inference latency and throughput, training steps and
their peak memory.

* latency (ms, :func:`measure_inference`): ``model(x, mode='tensor')`` in
  eval mode under ``torch.no_grad``, after ``warmup`` untimed runs, over
  ``repeats`` timed runs; callers report median, min and max.
* GFLOPs (:func:`count_flops`): ``mmengine.analysis.get_model_complexity_info``
  on ``model(x, mode='tensor')`` for one image of 3xHxW, as
  ``tools/analysis_tools/get_flops.py`` of MMSeg does (fvcore's counting:
  one multiply-add is one FLOP; ops it does not know count 0), so the
  figures compare with MMSeg's model zoo.
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
measurements: the model gets a ready NCHW tensor.
"""
import contextlib
import ctypes
import gc
import logging
import os
import signal
import statistics
import threading
import time

import torch

from .segmentors import BenchmarkError, model_name, num_classes, set_with_cp


DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


class BudgetExceeded(BaseException):
    """Raised by :func:`time_limit`; a BaseException so that libraries'
    ``except Exception`` clauses do not swallow it."""


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
