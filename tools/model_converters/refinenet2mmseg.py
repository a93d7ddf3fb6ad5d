"""Convert a published (Light-Weight) RefineNet checkpoint for MMSeg.

Reads the PyTorch weights released with DrSleep/refinenet-pytorch,
best-of-acrv/refinenet or DrSleep/light-weight-refinenet (a flat state dict
or one under ``model`` / ``weights`` / ``segmenter`` / ``state_dict``, with
or without ``module.`` prefixes), checks it key by key and shape by shape
against the published layout, and writes an MMEngine checkpoint
``{'meta': ..., 'state_dict': ...}`` for an ``EncoderDecoder`` with MMSeg's
``ResNet(style='pytorch')`` and ``RefineNetHead``::

    python tools/model_converters/refinenet2mmseg.py rf101.pth \
        refinenet_r101_voc.pth

Bad input ends with ``error: ...`` on stderr, exit status 2 and no output
file. See docs/model_converters.md.
"""
import argparse
import os.path as osp
import pickle
import sys
import warnings

import torch

from mmseg_refinenet.converters.refinenet import (
    convert_refinenet_state_dict, save_mmengine_checkpoint, unwrap_checkpoint)


def load_torch_file(path):
    """``torch.load`` weights-only, falling back (with a warning) to a full
    unpickle for old files that need it. Only convert files you trust."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: no such file')
    try:
        with warnings.catch_warnings():
            # torch 2.1's weights-only unpickler warns about its own use of
            # TypedStorage
            warnings.filterwarnings('ignore', 'TypedStorage is deprecated',
                                    UserWarning)
            return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # noqa: B902  (garbage raises anything)
        if not isinstance(err, pickle.UnpicklingError):
            raise ValueError(f'{path}: not a readable torch checkpoint '
                             f'({type(err).__name__}: {err})') from err
        if 'weights only' not in str(err).lower():  # not a pickle at all
            raise ValueError(f'{path}: not a readable torch checkpoint '
                             f'({err})') from err
        warnings.warn(f'{path} is not a plain weights file; loading it with '
                      'weights_only=False (this runs its pickled code: only '
                      'do this with files you trust)')
    try:
        return torch.load(path, map_location='cpu', weights_only=False)
    except Exception as err:  # any unpickling failure: not a checkpoint
        raise ValueError(f'{path}: not a readable torch checkpoint '
                         f'({err})') from err


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='published RefineNet checkpoint (.pth)')
    parser.add_argument('dst', help='where to write the MMSeg checkpoint')
    parser.add_argument(
        '--lightweight',
        choices=['auto', 'yes', 'no'],
        default='auto',
        help='Light-Weight RefineNet layout; auto: 1x1 adaptation convs')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    lightweight = dict(auto=None, yes=True, no=False)[args.lightweight]
    try:
        state_dict = unwrap_checkpoint(load_torch_file(args.src))
        converted, info = convert_refinenet_state_dict(
            state_dict, lightweight=lightweight)
        variant = ('Light-Weight RefineNet'
                   if info['lightweight'] else 'RefineNet (4-cascaded)')
        base = ('lw_refinenet_r50.py'
                if info['lightweight'] else 'refinenet_r50.py')
        meta = dict(
            converted_from=args.src,
            converter='tools/model_converters/refinenet2mmseg.py',
            variant=variant,
            depth=info['depth'],
            num_classes=info['num_classes'],
            base_config=f'configs/_base_/models/{base}')
        save_mmengine_checkpoint(converted, meta, args.dst)
    except (ValueError, OSError, RuntimeError) as err:
        first_line = (str(err).strip().splitlines() or [repr(err)])[0]
        print(f'error: {first_line}', file=sys.stderr)
        return 2
    print(f'{variant}, ResNet-{info["depth"]}, {info["num_classes"]} '
          f'classes, {info["num_params"]:,} parameters: all '
          f'{len(state_dict)} tensors matched the published layout')
    print(f'wrote {args.dst}')
    print(f'use it with configs/_base_/models/{base} and\n'
          f'  model.backbone.depth={info["depth"]}\n'
          f'  model.decode_head.num_classes={info["num_classes"]}\n'
          '  model.decode_head.align_corners=True  (the released model '
          'upsamples with align_corners=True)\n'
          '  model.backbone.init_cfg=None\n'
          f'  load_from={args.dst!r}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
