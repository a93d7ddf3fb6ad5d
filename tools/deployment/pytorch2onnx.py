"""Export a segmentor (RefineNet, FRRN, any MMSeg EncoderDecoder) to ONNX.

    python tools/deployment/pytorch2onnx.py CONFIG --checkpoint CKPT \\
        --shape 512 1024 --out refinenet.onnx [--dynamic] [--no-labels] \\
        [--exporter dynamo|torchscript] [--opset N] [--verify]

The graph takes a normalised ``(N, 3, H, W)`` float32 batch (the output of
the config's data_preprocessor: channel order and mean/std are stored in the
model's metadata) and returns ``logits`` ``(N, C, H, W)`` resized to the
input, plus ``labels`` ``(N, H, W)`` int64 unless ``--no-labels``; see
:mod:`mmseg_refinenet.deployment.onnx_export`. ``--dynamic`` makes batch,
height and width dynamic. ``--verify`` runs the file in onnxruntime on
random inputs (the export shape and, with ``--dynamic``, a second shape and
batch) and compares the logits and labels with PyTorch before the file
takes its name; a mismatch writes nothing (a file already at ``--out`` is
left as it was) and exits with status 1.

Without ``--checkpoint`` the model keeps its random initial weights (useful
to check that a config exports; the tool says so). The checkpoint is
unpickled with an allowlist of a checkpoint's types, so it cannot run code;
``--trust-checkpoint`` (or ``trust_checkpoint = True`` in the config)
unpickles a file one trusts in full. Wrong arguments (missing config or
checkpoint, a checkpoint of another model or holding other objects than a
checkpoint's, a shape the model cannot take, onnx not installed) end with
``error: ...`` and exit status 2, and no file is left behind: the file is
written under a temporary name and renamed only when the export (and the
verification) succeeded.
"""
import argparse
import importlib.util
import json
import os.path as osp
import sys
import warnings

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


class ExportError(Exception):
    """A wrong argument or input; reported as ``error: ...``, exit 2."""


class VerificationFailed(Exception):
    """onnxruntime and PyTorch disagree on the exported model (exit 1)."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export an MMSeg segmentor to ONNX')
    parser.add_argument('config', help='model config file')
    parser.add_argument('--checkpoint', help='checkpoint file (.pth)')
    parser.add_argument(
        '--trust-checkpoint',
        action='store_true',
        help='unpickle the checkpoint in full, which runs any code it '
        'holds: only for a file you trust (by default only the types of a '
        'checkpoint are built; also trust_checkpoint = True in the config)')
    parser.add_argument(
        '--out', required=True, help='ONNX file to write (e.g. model.onnx)')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=[512, 512],
        metavar=('H', 'W'),
        help='example input height and width (default 512 512)')
    parser.add_argument(
        '--batch', type=int, default=1, help='example batch size')
    parser.add_argument(
        '--dynamic',
        action='store_true',
        help='dynamic batch, height and width')
    parser.add_argument(
        '--exporter',
        choices=['dynamo', 'torchscript'],
        default=None,
        help="torch.onnx exporter: 'dynamo' (torch.export; torch's "
        "default; torch >= 2.6) or 'torchscript' (legacy tracer, faster to "
        "export). Default: 'dynamo' where torch has it, else 'torchscript'")
    parser.add_argument(
        '--opset', type=int, default=None, help='ONNX opset version')
    parser.add_argument(
        '--no-labels',
        action='store_true',
        help='export the logits only, without the argmax class map')
    parser.add_argument(
        '--verify',
        action='store_true',
        help='compare onnxruntime with PyTorch on random inputs')
    parser.add_argument(
        '--rtol',
        type=float,
        default=1e-4,
        help='--verify: largest max|onnx - torch| / max|torch| of the logits')
    return parser.parse_args(argv)


def check_args(args):
    if not osp.isfile(args.config):
        raise ExportError(f'config file {args.config!r} does not exist; '
                          'expected a model config such as '
                          'configs/refinenet/*.py')
    if args.checkpoint is not None and not osp.isfile(args.checkpoint):
        raise ExportError(f'checkpoint file {args.checkpoint!r} does not '
                          'exist; expected a .pth file of this config')
    if min(args.shape) < 1 or args.batch < 1:
        raise ExportError(f'--shape {args.shape[0]} {args.shape[1]} --batch '
                          f'{args.batch}: expected positive sizes')
    if osp.isdir(args.out):
        raise ExportError(f'--out {args.out!r} is a folder; expected a file '
                          'name such as model.onnx')
    missing = [
        name for name in ('onnx', 'onnxruntime' if args.verify else None)
        if name and importlib.util.find_spec(name) is None
    ]
    if args.exporter == 'dynamo' and importlib.util.find_spec(
            'onnxscript') is None:
        missing.append('onnxscript')
    if missing:
        raise ExportError(f'{" and ".join(missing)} not installed; run pip '
                          f'install {" ".join(missing)} (or bash '
                          'tools/install.sh --tests)')


def metadata(cfg, model, args):
    pre = cfg.model.get('data_preprocessor') or cfg.get(
        'data_preprocessor') or {}
    test_cfg = cfg.model.get('test_cfg') or {}
    return {
        'config': osp.abspath(args.config),
        'checkpoint': osp.abspath(args.checkpoint) if args.checkpoint else '',
        'input': 'float32 (N, 3, H, W): images after the data_preprocessor '
        '(channel order, then (x - mean) / std)',
        'mean': list(pre.get('mean') or []),
        'std': list(pre.get('std') or []),
        'bgr_to_rgb': bool(pre.get('bgr_to_rgb', False)),
        'classes': list(model.dataset_meta['classes']),
        'align_corners': bool(model.decode_head.align_corners),
        'test_mode': test_cfg.get('mode', 'whole'),
    }


def run(args):
    if importlib.util.find_spec('mmseg_refinenet') is None:
        sys.path.insert(0, REPO_ROOT)
    from mmseg_refinenet.deployment import (DEFAULT_EXPORTER,
                                            dynamo_exporter_available)
    if args.exporter is None:
        args.exporter = DEFAULT_EXPORTER
    elif args.exporter == 'dynamo' and not dynamo_exporter_available():
        import torch
        raise ExportError('--exporter dynamo needs torch >= 2.6 (this is '
                          f'torch {torch.__version__}); use --exporter '
                          'torchscript')
    check_args(args)
    import torch

    from mmseg_refinenet.apis import SegmentorLoadError, load_segmentor
    from mmseg_refinenet.deployment import export_onnx, verify_onnx
    try:
        model, cfg, _ = load_segmentor(
            args.config, args.checkpoint,
            trust_checkpoint=args.trust_checkpoint)
    except SegmentorLoadError as err:
        raise ExportError(str(err))
    if args.checkpoint is None:
        print('note: no --checkpoint: exporting the random initial weights')
    if (cfg.model.get('test_cfg') or {}).get('mode') == 'slide':
        print('note: the config tests with sliding windows '
              f'(crop_size={cfg.model.test_cfg.get("crop_size")}); the '
              'exported graph runs on whole inputs of any size you give it')
    height, width = args.shape
    # fail here, with the model's own message, rather than inside the
    # exporter: e.g. an FRRN input not divisible by its pooling factor
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, height, width), mode='tensor')
    except (ValueError, RuntimeError) as err:
        raise ExportError(f'--shape {height} {width} does not fit the model '
                          f'of {args.config!r}: {err}')
    print(f'exporting {args.config} at {args.batch}x3x{height}x{width} '
          f"({'dynamic' if args.dynamic else 'static'} shape, "
          f'{args.exporter} exporter) ...')
    shapes = [(1, 3, height, width)]
    if args.dynamic:
        # another batch and size; +64 keeps FRRN's divisibility
        shapes.append((2, 3, height + 64, width + 64))

    def verify(wrapper, path):
        # on the file under its temporary name: it takes the name of --out
        # only once it passed
        reports = verify_onnx(wrapper, path, shapes, rtol=args.rtol)
        for r in reports:
            print('verify ' + json.dumps(r))
        if not all(r['ok'] for r in reports):
            raise VerificationFailed
        print(f'verified with onnxruntime on {len(shapes)} input shape(s)')

    try:
        export_onnx(
            model,
            args.out,
            (height, width),
            batch_size=args.batch,
            dynamic=args.dynamic,
            exporter=args.exporter,
            opset=args.opset,
            with_labels=not args.no_labels,
            metadata=metadata(cfg, model, args),
            check=verify if args.verify else None)
    except VerificationFailed:
        kept = (' (the file already there is unchanged)'
                if osp.exists(args.out) else '')
        sys.stderr.write(f'error: onnxruntime and PyTorch disagree (rtol '
                         f'{args.rtol}); {args.out} was not written{kept}\n')
        return 1
    size = osp.getsize(args.out) / 2**20
    print(f'wrote {args.out} ({size:.1f} MiB)')
    return 0


def main(argv=None):
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    try:
        return run(parse_args(argv))
    except ExportError as err:
        sys.stderr.write(f'error: {err}\n')
        return 2


if __name__ == '__main__':
    sys.exit(main())
