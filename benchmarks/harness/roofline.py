"""Roofline figures: FLOPs and memory traffic of one forward, and the
peaks of known GPUs that bound its time."""
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .measure import autocast, make_input, prepare

# Dense peaks of data-centre GPUs, as torch names them:
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
