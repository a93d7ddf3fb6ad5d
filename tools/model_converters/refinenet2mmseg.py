"""Convert a published (Light-Weight) RefineNet checkpoint for MMSeg.

Reads the PyTorch weights released with DrSleep/refinenet-pytorch,
best-of-acrv/refinenet or DrSleep/light-weight-refinenet (ResNet and
MobileNetV2 models; a flat state dict or one under ``model`` / ``weights``
/ ``segmenter`` / ``state_dict``, with or without ``module.`` prefixes),
detects the model, checks it key by key and shape by shape against the
published layout, and writes an MMEngine checkpoint
``{'meta': ..., 'state_dict': ...}`` for an ``EncoderDecoder`` with MMSeg's
``ResNet(style='pytorch')`` (or ``ExpandedMobileNetV2``) and
``RefineNetHead``::

    python tools/model_converters/refinenet2mmseg.py rf101.pth \
        refinenet_r101_voc.pth

The file is unpickled with the checkpoint allowlist, so it cannot run code;
``--trust-checkpoint`` unpickles a file one trusts in full. Bad input ends
with ``error: ...`` on stderr, exit status 2 and no output file. See
docs/model_converters.md.
"""
import argparse
import os.path as osp
import sys

from mmseg_refinenet.converters.refinenet import (
    convert_refinenet_state_dict, save_mmengine_checkpoint, unwrap_checkpoint)
from mmseg_refinenet.utils import (UntrustedCheckpointError,
                                   load_local_checkpoint, trusted_checkpoints)


def load_torch_file(path, trust=False):
    """The object saved in the torch file ``path``, unpickled without
    running code from it (the checkpoint allowlist of
    :mod:`mmseg_refinenet.utils.checkpoint`), or in full with ``trust``.

    Raises:
        FileNotFoundError: no such file.
        UntrustedCheckpointError: the file needs other globals and is not
            trusted; nothing of it was run.
        ValueError: not a torch file.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: no such file')
    try:
        with trusted_checkpoints(path if trust else None):
            return load_local_checkpoint(path, map_location='cpu')
    except UntrustedCheckpointError:
        raise
    except Exception as err:  # noqa: B902  (garbage raises anything)
        cause = err.__cause__ or err
        raise ValueError(f'{path}: not a readable torch checkpoint '
                         f'({type(cause).__name__}: {cause})') from err


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='published RefineNet checkpoint (.pth)')
    parser.add_argument('dst', help='where to write the MMSeg checkpoint')
    parser.add_argument(
        '--lightweight',
        choices=['auto', 'yes', 'no'],
        default='auto',
        help='Light-Weight RefineNet layout; auto: 1x1 adaptation convs')
    parser.add_argument(
        '--trust-checkpoint',
        action='store_true',
        help='unpickle the source file in full, which runs any code it '
        'holds: only for a file you trust (by default only the types of a '
        'checkpoint are built)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    lightweight = dict(auto=None, yes=True, no=False)[args.lightweight]
    try:
        state_dict = unwrap_checkpoint(
            load_torch_file(args.src, trust=args.trust_checkpoint))
        converted, info = convert_refinenet_state_dict(
            state_dict, lightweight=lightweight)
        variant = ('Light-Weight RefineNet'
                   if info['lightweight'] else 'RefineNet (4-cascaded)')
        if info['depth'] is None:  # MobileNetV2
            base = 'lw_refinenet_mobilenet_v2.py'
            backbone_line = "model.backbone.type='ExpandedMobileNetV2'"
        else:
            base = ('lw_refinenet_r50.py'
                    if info['lightweight'] else 'refinenet_r50.py')
            backbone_line = f'model.backbone.depth={info["depth"]}'
        meta = dict(
            converted_from=args.src,
            converter='tools/model_converters/refinenet2mmseg.py',
            variant=variant,
            backbone=info['backbone'],
            depth=info['depth'],
            num_classes=info['num_classes'],
            base_config=f'configs/_base_/models/{base}')
        save_mmengine_checkpoint(converted, meta, args.dst)
    except (ValueError, OSError, RuntimeError) as err:
        first_line = (str(err).strip().splitlines() or [repr(err)])[0]
        print(f'error: {first_line}', file=sys.stderr)
        return 2
    print(f'{variant}, {info["backbone"]}, {info["num_classes"]} '
          f'classes, {info["num_params"]:,} parameters: all '
          f'{len(state_dict)} tensors matched the published layout')
    print(f'wrote {args.dst}')
    print(f'use it with configs/_base_/models/{base} and\n'
          f'  {backbone_line}\n'
          f'  model.decode_head.num_classes={info["num_classes"]}\n'
          '  model.decode_head.align_corners=True  (the released model '
          'upsamples with align_corners=True)\n'
          '  model.backbone.init_cfg=None\n'
          f'  load_from={args.dst!r}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
