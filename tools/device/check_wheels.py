"""Check a folder of wheels for the lent GPU machine before carrying it.

The GPU machine (CPython 3.12.3 on x86-64 Linux, no network) gets the
wheels of ``tools/device/fetch_wheels.sh`` through the 64 MiB a call may
carry, and installs them with ``pip install --no-index --no-deps``. A
missing requirement would only show there, as an ImportError at the first
run, so this script checks, without installing anything, that

* every wheel fits CPython 3.12 on manylinux x86_64 (its tags and its
  Requires-Python);
* every requirement (Requires-Dist of each wheel's METADATA, and of each
  sdist's PKG-INFO or ``*.egg-info/requires.txt``, plus the sdist's build
  requirements), with its marker evaluated for Python 3.12 on Linux and
  extras left out, is met by a wheel in the folder (version specifiers
  checked) or by a package of the device image (:data:`DEVICE_PACKAGES`;
  only the name is checked where its version is unknown);
* no package is there twice (two versions, or a wheel and an sdist).

Usage::

    python tools/device/check_wheels.py .carry/wheels
    python tools/device/check_wheels.py --list-device-packages

Exit status 0 and ``ok: N wheels + M sdist, X MiB``; 1 and the list of
problems; 2 for wrong arguments (one line ``error: ...``). Needs only the
standard library and ``packaging``.
"""
import email.parser
import os
import os.path as osp
import sys
import tarfile
import tomllib
import zipfile

from packaging import tags
from packaging.markers import InvalidMarker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (InvalidSdistFilename, InvalidWheelFilename,
                             canonicalize_name, parse_sdist_filename,
                             parse_wheel_filename)
from packaging.version import Version


from device_cli import cli  # noqa: E402 (this folder, see device_cli.py)
fail = cli.fail

# The device image's package list, read 2026-11-17 (pip packages present
# on the lent GPU machine; versions known only for some). Not carried.
DEVICE_PACKAGES = {
    'cmake': None,
    'cython': None,
    'h5py': None,
    'matplotlib': None,
    'ninja': None,
    'numpy': '2.5.2',
    'onnx': '1.23.1',
    'onnxruntime': '1.30.0',
    'onnxscript': '0.7.2',
    'opencv-python-headless': None,
    'packaging': None,
    'pillow': None,
    'psutil': None,
    'pytest': None,
    'pyyaml': None,
    'regex': None,
    'rich': None,
    'scipy': None,
    'setuptools': None,  # version unknown, maybe >= 81: 80.x is carried
    'tabulate': None,
    'torch': '2.11.0',
    'tqdm': None,
    'wheel': None,
}

# Requirements met by another distribution of the same module: mmengine's
# wheel (and mmcv's requires.txt) name opencv-python; the device has
# opencv-python-headless, the same ``cv2``. pip would not see that, hence
# ``pip install --no-deps``.
PROVIDED_BY = {
    'opencv-python': 'opencv-python-headless',
}

# Build requirements of sdists beyond their pyproject.toml (or pip's
# default, setuptools, for a bare setup.py): mmcv's setup.py imports
# pkg_resources (gone in setuptools 81) and torch.utils.cpp_extension, and
# is built with --no-build-isolation.
BUILD_REQUIRES = {
    'mmcv': ['setuptools<81', 'torch', 'wheel'],
}

PYTHON = '3.12.3'
ENVIRONMENT = {
    'python_version': '3.12',
    'python_full_version': PYTHON,
    'implementation_name': 'cpython',
    'implementation_version': PYTHON,
    'platform_python_implementation': 'CPython',
    'sys_platform': 'linux',
    'platform_system': 'Linux',
    'platform_machine': 'x86_64',
    'os_name': 'posix',
    'extra': '',
}
PLATFORMS = ([f'manylinux_2_{minor}_x86_64' for minor in range(39, 4, -1)]
             + ['manylinux2014_x86_64', 'manylinux2010_x86_64',
                'manylinux1_x86_64', 'linux_x86_64'])
SUPPORTED_TAGS = frozenset(
    list(tags.cpython_tags((3, 12), abis=['cp312'], platforms=PLATFORMS))
    + list(tags.compatible_tags((3, 12), 'cp312', platforms=PLATFORMS)))


class Dist:
    """A wheel or an sdist of the folder: name, version, requirements."""

    def __init__(self, filename, name, version, kind):
        self.filename = filename
        self.name = name
        self.version = version
        self.kind = kind
        self.requires = []  # [(text, origin)]
        self.requires_python = None


def _headers(text):
    return email.parser.HeaderParser().parsestr(text)


def read_wheel(path, problems):
    filename = osp.basename(path)
    try:
        name, version, _, wheel_tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as e:
        problems.append(f'{filename}: {e}')
        return None
    dist = Dist(filename, name, version, 'wheel')
    if not wheel_tags & SUPPORTED_TAGS:
        problems.append(
            f'{filename}: no tag for CPython 3.12 on manylinux x86_64 '
            f'({", ".join(sorted(map(str, wheel_tags)))})')
    try:
        with zipfile.ZipFile(path) as zf:
            metas = [n for n in zf.namelist()
                     if n.count('/') == 1
                     and n.endswith('.dist-info/METADATA')]
            if len(metas) != 1:
                problems.append(f'{filename}: expected one '
                                f'*.dist-info/METADATA, found {len(metas)}')
                return dist
            meta = _headers(zf.read(metas[0]).decode('utf-8'))
    except (zipfile.BadZipFile, OSError) as e:
        problems.append(f'{filename}: not a readable wheel ({e})')
        return dist
    if canonicalize_name(meta.get('Name', '')) != name or Version(
            meta.get('Version', '0')) != version:
        problems.append(f'{filename}: METADATA says {meta.get("Name")} '
                        f'{meta.get("Version")}')
    dist.requires = [(r, 'requires') for r in meta.get_all('Requires-Dist')
                     or []]
    dist.requires_python = meta.get('Requires-Python')
    return dist


def _requires_txt(text):
    """Requirements of an egg-info ``requires.txt``, extras left out."""
    out = []
    marker = ''
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        if line.startswith('['):
            extra, _, marker = line[1:-1].partition(':')
            marker = None if extra else marker
            continue
        if marker is None:  # an extra's section
            continue
        out.append(f'{line}; {marker}' if marker else line)
    return out


def read_sdist(path, problems):
    filename = osp.basename(path)
    try:
        name, version = parse_sdist_filename(filename)
    except InvalidSdistFilename as e:
        problems.append(f'{filename}: {e}')
        return None
    dist = Dist(filename, name, version, 'sdist')
    top = f'{filename[:-len(".tar.gz")]}/'
    try:
        with tarfile.open(path, 'r:gz') as tf:
            names = set(tf.getnames())

            def read(member):
                return tf.extractfile(member).read().decode('utf-8')

            meta = _headers(read(top + 'PKG-INFO'))
            requires = meta.get_all('Requires-Dist') or []
            egg = [n for n in names
                   if n.count('/') == 2 and n.startswith(top)
                   and n.endswith('.egg-info/requires.txt')]
            if not requires and egg:
                requires = _requires_txt(read(egg[0]))
            build = ['setuptools>=40.8.0']  # pip's default for setup.py
            if top + 'pyproject.toml' in names:
                build = tomllib.loads(read(top + 'pyproject.toml')).get(
                    'build-system', {}).get('requires', build)
    except (tarfile.TarError, KeyError, OSError, UnicodeDecodeError,
            tomllib.TOMLDecodeError) as e:
        problems.append(f'{filename}: not a readable sdist ({e})')
        return dist
    build += BUILD_REQUIRES.get(name, [])
    dist.requires = ([(r, 'requires') for r in requires]
                     + [(r, 'build requires') for r in build])
    dist.requires_python = meta.get('Requires-Python')
    return dist


def check(folder):
    """``(problems, notes, wheels, sdists, bytes)`` of ``folder``."""
    problems, notes = [], []
    dists, total = [], 0
    for filename in sorted(os.listdir(folder)):
        path = osp.join(folder, filename)
        if not osp.isfile(path):
            continue
        if filename.endswith('.whl'):
            dist = read_wheel(path, problems)
        elif filename.endswith('.tar.gz'):
            dist = read_sdist(path, problems)
        else:
            notes.append(f'{filename}: not a wheel or .tar.gz sdist, '
                         'ignored')
            continue
        total += osp.getsize(path)
        if dist:
            dists.append(dist)
    if not dists:
        problems.append(f'{folder}: no wheel or sdist')

    carried = {}
    for dist in dists:
        if dist.name in carried:
            problems.append(
                f'{dist.name} is there twice: {carried[dist.name].filename} '
                f'and {dist.filename}')
        else:
            carried[dist.name] = dist

    for dist in dists:
        if dist.requires_python:
            try:
                ok = Version(PYTHON) in SpecifierSet(dist.requires_python)
            except InvalidSpecifier as e:
                problems.append(f'{dist.filename}: Requires-Python: {e}')
                ok = True
            if not ok:
                problems.append(f'{dist.filename}: Requires-Python '
                                f'{dist.requires_python} excludes {PYTHON}')
        for text, origin in dist.requires:
            try:
                req = Requirement(text)
                if req.marker and not req.marker.evaluate(ENVIRONMENT):
                    continue
            except (InvalidRequirement, InvalidMarker) as e:
                problems.append(f'{dist.filename}: {origin} {text!r}: {e}')
                continue
            problem, note = check_requirement(req, carried)
            if problem:
                problems.append(f'{dist.filename} {origin} {req}: {problem}')
            if note:
                notes.append(f'{dist.filename} {origin} {req}: {note}')
    wheels = sum(d.kind == 'wheel' for d in dists)
    return problems, notes, wheels, len(dists) - wheels, total


def check_requirement(req, carried):
    """``(problem, note)`` for one requirement (either may be None)."""
    name = canonicalize_name(req.name)
    if name in carried:
        version = carried[name].version
        if req.specifier and not req.specifier.contains(version,
                                                        prereleases=True):
            return (f'carried {carried[name].filename} is version '
                    f'{version}', None)
        return None, None
    note = None
    if name not in DEVICE_PACKAGES and name in PROVIDED_BY:
        note = (f'met by the device\'s {PROVIDED_BY[name]} (install with '
                'pip --no-deps)')
        name = PROVIDED_BY[name]
    if name not in DEVICE_PACKAGES:
        return 'neither carried nor on the device', None
    version = DEVICE_PACKAGES[name]
    if version and req.specifier and not req.specifier.contains(
            version, prereleases=True):
        return f'the device has {name} {version}', note
    return None, note


def main(argv=None):
    parser = cli.OneLineArgumentParser(
        description='Check that a folder of wheels (and sdists) for the GPU '
        'machine (CPython 3.12, Linux x86_64) is complete and consistent.')
    parser.add_argument('folder', metavar='DIR', nargs='?',
                        help='folder of the wheels, e.g. .carry/wheels')
    parser.add_argument(
        '--list-device-packages', action='store_true',
        help='print instead the device image\'s packages as pip '
        'requirements, one a line (name==version where the version is '
        'known), less torch and setuptools, for an environment that stands '
        'in for the device (build_mmcv_wheel.sh)')
    args = parser.parse_args(argv)
    if args.list_device_packages:
        if args.folder is not None:
            fail('--list-device-packages takes no folder')
        for name, version in sorted(DEVICE_PACKAGES.items()):
            if name not in ('torch', 'setuptools'):
                print(f'{name}=={version}' if version else name)
        return 0
    if args.folder is None:
        fail('give the folder of the wheels, e.g. .carry/wheels')
    if not osp.isdir(args.folder):
        fail(f'{args.folder}: no such folder')
    problems, notes, wheels, sdists, total = check(args.folder)
    for note in notes:
        print(f'note: {note}')
    if problems:
        print(f'{len(problems)} problem(s) in {args.folder}:',
              file=sys.stderr)
        for problem in problems:
            print(f'  {problem}', file=sys.stderr)
        return 1
    print(f'ok: {wheels} wheels + {sdists} sdist, '
          f'{total / (1 << 20):.1f} MiB')
    return 0


if __name__ == '__main__':
    sys.exit(main())
