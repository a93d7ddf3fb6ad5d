"""Convert official FRRN A/B weights (Lasagne ``.npz``) for MMSeg.

Reads the ``.npz`` saved by TobyPDE/FRRN (``arr_0``, ``arr_1``, ... in
Lasagne's parameter order), checks the number and shape of every array
against FRRN A or B, flips the filters (Lasagne convolves, PyTorch
correlates), turns the batch norms' ``inv_std`` into ``running_var`` and
writes an MMEngine checkpoint for an ``EncoderDecoder`` with ``FRRN`` and
``FRRNHead``::

    python tools/model_converters/frrn_lasagne2mmseg.py frrn_a.npz \
        frrn_a_cityscapes.pth --arch A

Arrays of pickled Python objects are refused (unpickling them can run
code) unless ``--trust-checkpoint`` is given. Bad input ends with
``error: ...`` on stderr, exit status 2 and no output file. See
docs/model_converters.md.
"""
import argparse
import sys

from mmseg_refinenet.converters.frrn import (convert_frrn_lasagne_params,
                                             load_lasagne_npz)
from mmseg_refinenet.converters.refinenet import save_mmengine_checkpoint


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official FRRN weights (.npz)')
    parser.add_argument('dst', help='where to write the MMSeg checkpoint')
    parser.add_argument('--arch', choices=['A', 'B'], required=True)
    parser.add_argument(
        '--num-classes',
        type=int,
        default=None,
        help='expected classes (official: 19); default: read from the file')
    parser.add_argument(
        '--bn-eps',
        type=float,
        default=1e-5,
        help='eps of the target model\'s batch norms (default 1e-5)')
    parser.add_argument(
        '--trust-checkpoint',
        action='store_true',
        help='unpickle the source file in full, which runs any code it '
        'holds: only for a file you trust (by default arrays of pickled '
        'objects are refused)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        arrays = load_lasagne_npz(args.src,
                                  trust=args.trust_checkpoint)
        state_dict, info = convert_frrn_lasagne_params(
            arrays, args.arch, args.num_classes, bn_eps=args.bn_eps)
        meta = dict(
            converted_from=args.src,
            converter='tools/model_converters/frrn_lasagne2mmseg.py',
            arch=args.arch,
            num_classes=info['num_classes'],
            bn_eps=args.bn_eps,
            base_config=f'configs/_base_/models/frrn_{args.arch.lower()}.py')
        save_mmengine_checkpoint(state_dict, meta, args.dst)
    except (ValueError, OSError, RuntimeError) as err:
        first_line = (str(err).strip().splitlines() or [repr(err)])[0]
        print(f'error: {first_line}', file=sys.stderr)
        return 2
    print(f'FRRN {args.arch}, {info["num_classes"]} classes, '
          f'{info["num_params"]:,} parameters: all {info["num_arrays"]} '
          'arrays matched the Lasagne layout')
    print(f'wrote {args.dst}')
    print(f'use it with configs/_base_/models/frrn_{args.arch.lower()}.py '
          f'and\n  model.decode_head.num_classes={info["num_classes"]}\n'
          f'  load_from={args.dst!r}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
