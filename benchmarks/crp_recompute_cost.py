"""Time cost of the CRP's ``recompute_pooling`` (RefineNet Sec. 3.2).

Times one forward and backward pass of a :class:`ChainedResidualPooling`
(4 stages, 5x5 pooling, 3x3 convolutions, ``order='pool_conv'``) with
``recompute_pooling`` off and on, alternating, after a warm-up, and prints
the median, min and max of each::

    python benchmarks/crp_recompute_cost.py [--channels 256]
        [--shape N H W] [--repeats 4] [--device cpu]

The default input, 2x256x128x256, is the last RefineNet-R101 block's at
512x1024, batch 2. The memory side of the trade is in
``benchmarks/estimate_memory.py``.
"""
import argparse
import statistics

import torch

from mmseg_refinenet.models.blocks import ChainedResidualPooling
from harness.measure import timed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--channels', type=int, default=256)
    parser.add_argument('--shape', type=int, nargs=3, default=(2, 128, 256),
                        metavar=('N', 'H', 'W'))
    parser.add_argument('--repeats', type=int, default=4)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    n, h, w = args.shape
    x = torch.randn(n, args.channels, h, w, device=device,
                    requires_grad=True)
    crps = {
        flag: ChainedResidualPooling(
            args.channels, recompute_pooling=flag).to(device)
        for flag in (False, True)
    }

    def step(crp):
        return lambda: crp(x).sum().backward()

    times = {flag: [] for flag in crps}
    for flag, crp in crps.items():  # warm-up
        timed(step(crp), 1, 0, device)
    for _ in range(args.repeats):  # alternating
        for flag, crp in crps.items():
            (ms, ) = timed(step(crp), 0, 1, device)
            times[flag].append(ms / 1000.0)
    print(f'CRP {args.channels} channels, input {n}x{args.channels}x{h}x{w}'
          f', forward + backward, {device}, torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads, {args.repeats} runs each')
    for flag, runs in times.items():
        print(f'recompute_pooling={flag!s:5}: median '
              f'{statistics.median(runs):.3f} s ({min(runs):.3f}..'
              f'{max(runs):.3f})')


if __name__ == '__main__':
    main()
