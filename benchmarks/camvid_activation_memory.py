"""Estimate the training activation memory of the five CamVid models.

For ``benchmarks/camvid_experiment.py``, which trains the five models of
``configs/camvid/`` at the same time on one GPU (will they fit?): the
bytes of the tensors that one training forward pass (``mode='loss'`` in
train mode, random labels) leaves alive for the backward pass, followed
storage by storage by PyTorch's ``MemTracker`` (so the inputs that gradient
checkpointing keeps count too, which ``saved_tensors_hooks`` do not see),
at ``--batch`` and the padded 360x480 crop (384x480, ``--shape``), in
fp32 on the CPU, then scaled to batch 8. Weights, gradients, optimiser
state, CUDA contexts, cuDNN workspaces and temporaries freed during the
forward are not included; an estimate, not a GPU measurement::

    python benchmarks/camvid_activation_memory.py [--batch 2] [--shape H W]
"""
import argparse
import os.path as osp
import sys

import torch
from mmengine.registry import init_default_scope

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
from camvid_experiment import MODELS  # noqa: E402
from harness import segmentors  # noqa: E402
from harness.measure import make_seg_samples  # noqa: E402
from harness.memory import kept_bytes  # noqa: E402

import mmseg_refinenet  # noqa: E402,F401 (registers the models)


def kept_by_loss(model, batch, shape=(384, 480)):
    """Bytes that one training forward pass leaves alive: what autograd
    keeps for the backward pass, and the losses."""
    x = torch.randn(batch, 3, *shape)
    samples = make_seg_samples(batch, shape, 11, 'cpu')
    # through __call__, so that the tracker sees the module tree
    _, kept = kept_bytes(lambda: model(x, samples, mode='loss'), model, x)
    return kept


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, default=2,
                        help='batch measured (BatchNorm needs 2 or more)')
    parser.add_argument('--shape', type=int, nargs=2, default=(384, 480),
                        metavar=('H', 'W'),
                        help='input size (default 384 480: the padded crop)')
    args = parser.parse_args(argv)
    if args.batch < 2 or min(args.shape) < 32:
        parser.error('--batch must be >= 2 and --shape >= 32 x 32')
    torch.manual_seed(0)
    init_default_scope('mmseg')
    total = 0.0
    print(f'{"model":28s} {"params (M)":>10s} {"batch 8, fp32 (GiB)":>20s}')
    for _, name, config in MODELS:
        cfg = segmentors.load_config(osp.join(REPO, config))
        cfg.model.pop('data_preprocessor', None)
        model = segmentors.build_model(cfg, config, 'cpu').train()
        params = sum(p.numel() for p in model.parameters()) / 1e6
        kept = kept_by_loss(model, args.batch, tuple(args.shape))
        gib = kept * 8 / args.batch / 2**30
        total += gib
        print(f'{name:28s} {params:10.1f} {gib:20.1f}', flush=True)
    print(f'{"total":28s} {"":10s} {total:20.1f}')


if __name__ == '__main__':
    main()
