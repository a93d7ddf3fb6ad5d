"""Whether a prebuilt mmcv wheel fits the Python and torch at hand.

mmcv's compiled ops (``mmcv._ext``) are built against one CPython minor
version and one torch build; loaded next to another torch they fail to
import, or worse, crash at the first call. ``build_mmcv_wheel.sh`` builds
mmcv on the development machine for the lent GPU machine's Python and torch
and stamps the folder with ``built-with.txt``; ``setup.sh`` on the GPU
machine asks this script whether to install that wheel or to compile mmcv
itself. One format, written and read here::

    python 3.12 torch 2.11.0+cu130

Usage::

    python tools/device/prebuilt_mmcv.py stamp DIR   # write DIR/built-with.txt
    python tools/device/prebuilt_mmcv.py check DIR   # the wheel to install

``check`` prints the wheel's path and exits 0 when DIR holds exactly one
``mmcv-2.1.0-*.whl`` and its stamp names this interpreter's Python
(major.minor) and ``torch.__version__`` exactly; otherwise it prints one
line saying why not (no wheel, no stamp, built for another Python or torch)
and exits 1. ``stamp`` writes the stamp of this interpreter. Wrong
arguments: one line ``error: ...`` and exit status 2. Needs only the
standard library and torch.
"""
import glob
import os.path as osp
import sys

from device_cli import cli  # noqa: E402 (this folder, see device_cli.py)

STAMP = 'built-with.txt'
WHEEL_GLOB = 'mmcv-2.1.0-*.whl'


def current_stamp() -> str:
    """``python X.Y torch V`` of this interpreter."""
    import torch
    version = sys.version_info
    return f'python {version.major}.{version.minor} torch {torch.__version__}'


def check(folder: str):
    """(wheel path, '') when the wheel in ``folder`` fits, else (None,
    why not)."""
    if not osp.isdir(folder):
        return None, f'no prebuilt mmcv: no folder {folder}'
    wheels = sorted(glob.glob(osp.join(folder, WHEEL_GLOB)))
    if not wheels:
        return None, f'no prebuilt mmcv: no {WHEEL_GLOB} in {folder}'
    if len(wheels) > 1:
        names = ', '.join(osp.basename(w) for w in wheels)
        return None, (f'{len(wheels)} mmcv wheels in {folder} ({names}): '
                      'keep the one build_mmcv_wheel.sh made')
    stamp_path = osp.join(folder, STAMP)
    if not osp.isfile(stamp_path):
        return None, (f'{stamp_path} is missing: which Python and torch the '
                      'wheel was built with is unknown')
    with open(stamp_path) as f:
        built = f.read().strip()
    here = current_stamp()
    if built != here:
        return None, (f'the prebuilt mmcv was built with {built}; this '
                      f'machine has {here}')
    return wheels[0], ''


def main(argv=None):
    parser = cli.OneLineArgumentParser(
        description='Stamp a prebuilt mmcv wheel with the Python and torch '
        'it was built with, or check that it fits this interpreter.')
    parser.add_argument('command', choices=('stamp', 'check'))
    parser.add_argument('folder', metavar='DIR',
                        help='the folder of the wheel (.carry/mmcv)')
    args = parser.parse_args(argv)
    if args.command == 'stamp':
        if not glob.glob(osp.join(args.folder, WHEEL_GLOB)):
            cli.fail(f'no {WHEEL_GLOB} in {args.folder} to stamp')
        stamp = current_stamp()
        with open(osp.join(args.folder, STAMP), 'w') as f:
            f.write(stamp + '\n')
        print(stamp)
        return 0
    wheel, why = check(args.folder)
    if wheel is None:
        print(why)
        return 1
    print(wheel)
    return 0


if __name__ == '__main__':
    sys.exit(main())
