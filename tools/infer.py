"""Segment images with a trained model and save the class map and overlay.

For each image (one file, or every image file of a folder in sorted order)
writes ``DIR/<stem>_classes.png`` (8-bit class-index map, same size as the
image) and ``DIR/<stem>_overlay.png`` (the prediction in the dataset's
palette blended over the image), and once ``DIR/legend.png`` (a colour
swatch and the name of each class)::

    python tools/infer.py IMAGE_OR_FOLDER --config CONFIG \\
        --checkpoint CKPT --out-dir DIR [--device cpu|cuda:0] [--opacity 0.5]

Builds on :func:`mmseg.apis.init_model` and :func:`mmseg.apis.inference_model`
but loads the weights with a strict key check: a checkpoint of another model
is refused instead of leaving layers at their random initialisation. Class
names and palette come from the checkpoint's ``meta.dataset_meta``, else from
the config's ``metainfo``.

The checkpoint is unpickled with an allowlist of a checkpoint's types, so
it cannot run code; ``--trust-checkpoint`` (or ``trust_checkpoint = True``
in the config) unpickles a file one trusts in full.

Wrong arguments (missing or unreadable config or checkpoint, a checkpoint
that does not fit the model or holds other objects than a checkpoint's, an
unreadable image, an empty folder) end with a one-line ``error: ...`` on
stderr and exit code 2 before anything is written; every output is written
under a temporary name and renamed when complete.
Works from any current directory.
"""
import argparse
import importlib.util
import os
import os.path as osp
import sys
import tempfile
import warnings

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp',
                  '.ppm', '.pgm', '.pbm')


class InferError(Exception):
    """A wrong argument or input; reported as ``error: ...``, exit 2."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Segment images: class maps, overlays and a legend')
    parser.add_argument('input', help='an image file or a folder of images')
    parser.add_argument('--config', required=True, help='model config file')
    parser.add_argument(
        '--checkpoint', required=True, help='checkpoint of that model')
    parser.add_argument(
        '--out-dir', required=True, help='folder for the outputs')
    parser.add_argument(
        '--device',
        default=None,
        help="'cpu' or 'cuda:N' (default: cuda:0 if available, else cpu)")
    parser.add_argument(
        '--opacity',
        type=float,
        default=0.5,
        help='opacity of the prediction in the overlay, in [0, 1]')
    parser.add_argument(
        '--trust-checkpoint',
        action='store_true',
        help='unpickle the checkpoint in full, which runs any code it '
        'holds: only for a file you trust (by default only the types of a '
        'checkpoint are built; also trust_checkpoint = True in the config)')
    args = parser.parse_args(argv)
    if not 0 <= args.opacity <= 1:
        raise InferError(f'--opacity {args.opacity} is outside [0, 1]')
    return args


def list_images(path):
    """Image files to segment: ``path`` itself, or those in the folder."""
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise InferError(f'input {path!r} does not exist; expected an image '
                         'file or a folder of images')
    names = sorted(
        n for n in os.listdir(path)
        if n.lower().endswith(IMG_EXTENSIONS)
        and osp.isfile(osp.join(path, n)))
    if not names:
        raise InferError(f'folder {path!r} holds no image files; expected '
                         f'files ending in {", ".join(IMG_EXTENSIONS)}')
    stems = {}
    for name in names:
        stem = osp.splitext(name)[0]
        if stem in stems:
            raise InferError(f'images {stems[stem]!r} and {name!r} in '
                             f'{path!r} share the name {stem!r}, so their '
                             'outputs would overwrite each other; rename '
                             'one')
        stems[stem] = name
    return [osp.join(path, n) for n in names]


def read_image(path):
    """The image as a BGR uint8 array, or an :class:`InferError`."""
    import cv2
    import numpy as np
    try:
        data = np.fromfile(path, dtype=np.uint8)
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except (OSError, cv2.error):
        img = None
    if img is None:
        raise InferError(f'image {path!r} could not be read; expected a '
                         'readable image file (PNG, JPEG, BMP, TIFF, ...)')
    return img


def check_device(device):
    import torch
    if device is None:
        return 'cuda:0' if torch.cuda.is_available() else 'cpu'
    if device == 'cpu':
        return device
    if device == 'cuda' or device.startswith('cuda:'):
        if not torch.cuda.is_available():
            raise InferError(f'--device {device}: CUDA is not available '
                             'here; use --device cpu')
        index = device.partition(':')[2] or '0'
        if not index.isdigit() or int(index) >= torch.cuda.device_count():
            raise InferError(
                f'--device {device}: expected cuda:N with N below '
                f'{torch.cuda.device_count()}')
        return device
    raise InferError(f"--device {device!r}: expected 'cpu' or 'cuda:N'")


def load_config(path):
    """The config, with a ``test_pipeline`` for MMSeg's inferencer."""
    from mmseg_refinenet.apis import SegmentorLoadError
    from mmseg_refinenet.apis import load_config as read_config
    try:
        cfg = read_config(path)
    except SegmentorLoadError as err:
        raise InferError(str(err))
    if 'test_pipeline' not in cfg:
        try:
            cfg.test_pipeline = cfg.test_dataloader.dataset.pipeline
        except (AttributeError, KeyError):
            raise InferError(f'config file {path!r} defines no '
                             '`test_pipeline`; expected one that loads an '
                             'image and packs it (PackSegInputs)')
    return cfg


def write_png(path, array):
    """Encode ``array`` as PNG under a temporary name, then rename."""
    import cv2
    ok, data = cv2.imencode('.png', array)
    if not ok:
        raise InferError(f'could not encode {path!r} as PNG')
    fd, tmp = tempfile.mkstemp(
        dir=osp.dirname(path), prefix='.' + osp.basename(path), suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data.tobytes())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def draw_legend(classes, palette):
    """One row per class: colour swatch (BGR image) and name."""
    import cv2
    import numpy as np
    font, scale, thick = cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1
    row, pad, swatch = 24, 6, 18
    width = max(cv2.getTextSize(c, font, scale, thick)[0][0]
                for c in classes)
    legend = np.full((row * len(classes) + pad, swatch + width + 3 * pad, 3),
                     255, np.uint8)
    for i, (name, colour) in enumerate(zip(classes, palette)):
        top = pad + i * row
        bgr = tuple(int(v) for v in colour[::-1])
        cv2.rectangle(legend, (pad, top), (pad + swatch - 1, top + swatch - 1),
                      bgr, -1)
        cv2.rectangle(legend, (pad, top), (pad + swatch - 1, top + swatch - 1),
                      (0, 0, 0), 1)
        cv2.putText(legend, name, (2 * pad + swatch, top + swatch - 4), font,
                    scale, (0, 0, 0), thick, cv2.LINE_AA)
    return legend


def run(args):
    # Everything is checked before the first output is written.
    if not osp.isfile(args.config):
        raise InferError(f'config file {args.config!r} does not exist; '
                         'expected a model config such as '
                         'configs/refinenet/*.py')
    if not osp.isfile(args.checkpoint):
        raise InferError(f'checkpoint file {args.checkpoint!r} does not '
                         'exist; expected a .pth file saved by training '
                         'this config')
    images = list_images(args.input)
    for path in images:
        read_image(path)
    device = check_device(args.device)
    if osp.exists(args.out_dir) and not osp.isdir(args.out_dir):
        raise InferError(f'--out-dir {args.out_dir!r} is a file; expected a '
                         'folder (it is created if missing)')

    # A checkout that is not pip-installed: make the plugin importable for
    # the config's custom_imports.
    if importlib.util.find_spec('mmseg_refinenet') is None:
        sys.path.insert(0, REPO_ROOT)
    import mmseg_refinenet  # noqa: F401 (checkpoint loader, modules)
    import numpy as np
    from mmengine.utils import ProgressBar
    from mmseg.apis import inference_model

    from mmseg_refinenet.apis import (SegmentorLoadError, build_segmentor,
                                      config_trust, dataset_meta,
                                      load_weights)
    cfg = load_config(args.config)
    try:
        trust = args.trust_checkpoint or config_trust(cfg, args.config)
        model = build_segmentor(cfg, args.config)
        meta = load_weights(model, args.checkpoint, args.config, trust)
    except SegmentorLoadError as err:
        raise InferError(str(err))
    model.to(device)
    num_classes = model.decode_head.num_classes
    if num_classes > 256:
        raise InferError(f'the model predicts {num_classes} classes; an '
                         '8-bit class map holds at most 256')
    model.dataset_meta = dataset_meta(meta, cfg, num_classes)
    classes = model.dataset_meta['classes']
    palette = np.array(model.dataset_meta['palette'], dtype=np.uint8)
    palette_bgr = palette[:, ::-1]

    os.makedirs(args.out_dir, exist_ok=True)
    write_png(osp.join(args.out_dir, 'legend.png'),
              draw_legend(classes, palette))
    bar = ProgressBar(len(images)) if osp.isdir(args.input) else None
    for path in images:
        img = read_image(path)
        result = inference_model(model, img)
        pred = result.pred_sem_seg.data[0].cpu().numpy().astype(np.uint8)
        colour = palette_bgr[pred].astype(np.float32)
        overlay = (img.astype(np.float32) * (1 - args.opacity) +
                   colour * args.opacity)
        overlay = np.clip(np.round(overlay), 0, 255).astype(np.uint8)
        stem = osp.splitext(osp.basename(path))[0]
        write_png(osp.join(args.out_dir, f'{stem}_classes.png'), pred)
        write_png(osp.join(args.out_dir, f'{stem}_overlay.png'), overlay)
        if bar is not None:
            bar.update()
    if bar is not None:
        sys.stdout.write('\n')
    print(f'wrote {len(images)} class maps and overlays and legend.png to '
          f'{args.out_dir}')


def main(argv=None):
    # MMEngine's import-time notice, not about this run
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    try:
        run(parse_args(argv))
    except InferError as err:
        sys.stderr.write(f'error: {err}\n')
        sys.exit(2)


if __name__ == '__main__':
    main()
