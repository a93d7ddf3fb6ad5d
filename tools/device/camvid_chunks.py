"""Carry SegNet's CamVid to the lent GPU machine in chunks, losslessly.

Why: each command sent to the lent GPU machine ships the repository's
working tree plus the ignored folders named in ``carry``, **at most 64 MiB
in all per call**, and the machine starts bare, without network. SegNet's
CamVid is 182 MB of PNGs, so it has to travel in several calls. To make
them fewer, ``pack`` re-encodes the RGB images as lossless WebP (about 30%
smaller than the PNGs; the 8-bit label PNGs are small and copied byte for
byte) and spreads them over chunk folders of at most ``--max-mib`` MiB
(default 40, leaving room for the repository and the wheels of
``tools/device/fetch_wheels.sh``). ``unpack`` decodes them on the other side
back into SegNet's layout and checks every image pixel for pixel against the
hash of the original that ``pack`` recorded. This script imports only the
standard library, numpy, Pillow and (if present) OpenCV, never torch or
mmseg: it runs before anything is installed on the GPU machine.

Chunks are filled split by split in the ``--order`` given (default train,
val, test), an image always next to its label, so that chunks 1..k hold all
of train before any of val. Chunk 1 also holds ``{train,val,test}.txt`` and
``README.md``. Each chunk is a folder::

    OUT_DIR/camvid-01/manifest.json          chunk index, number of chunks,
                                             and for every file: split, stem,
                                             kind, original name, sha256
    OUT_DIR/camvid-01/train/<stem>.webp      lossless WebP of train/<stem>.png
    OUT_DIR/camvid-01/trainannot/<stem>.png  the label PNG, as is
    OUT_DIR/camvid-01/train.txt, ...

Intended use::

    # here: chunks of at most 40 MiB under .carry/camvid (ignored by git)
    python tools/device/camvid_chunks.py pack ../shared/data/camvid \\
        .carry/camvid

    # on the GPU machine, one call per chunk or two (carry the chunk
    # folders, e.g. carry=[".carry/camvid/camvid-01"]); DEST outside the
    # repository survives between the calls of a warm machine:
    python tools/device/camvid_chunks.py unpack .carry/camvid/camvid-01 \\
        --out /tmp/camvid
    python tools/device/camvid_chunks.py unpack .carry/camvid/camvid-02 \\
        .carry/camvid/camvid-03 --out /tmp/camvid --check-complete

    # then, as usual:
    python tools/dataset_converters/camvid.py /tmp/camvid -o data/camvid

``unpack`` into the same DEST is idempotent: a chunk already unpacked there
(recorded in ``DEST/.camvid-chunks.json`` once all its files are verified
and written) is skipped. Files are written under a temporary name and
renamed, so an interrupted unpack leaves no half-written file. Use
``unpack --out DEST --check-complete`` (no chunk) to ask whether DEST is
complete: it exits with status 1 naming the chunks and files still missing.

Wrong arguments and failed checks end with one line ``error: ...`` and exit
status 2 (an incomplete DEST under ``--check-complete``: status 1).
"""
import hashlib
import io
import json
import multiprocessing
import os
import os.path as osp
import re
import shutil
import sys
import time

import numpy as np
from PIL import Image, features


from device_cli import cli  # noqa: E402 (this folder, see device_cli.py)
fail = cli.fail

try:
    import cv2
except ImportError:  # Pillow alone does the job, a little slower
    cv2 = None

SPLITS = ('train', 'val', 'test')
FORMAT = 'camvid-chunks/1'
MANIFEST = 'manifest.json'
STATE = '.camvid-chunks.json'  # in DEST: the chunks already unpacked there
CHUNK_NAME = 'camvid-{:02d}'
CHUNK_RE = re.compile(r'^camvid-\d+$')
PARTIAL = '.camvid-chunks.partial'
README = 'README.md'
# room kept in each chunk for the manifest's header (the file entries are
# counted exactly, see _manifest_text)
HEADER_RESERVE = 4096
MIB = 1 << 20


# --------------------------------------------------------------------------
# pixels, hashes, files


def pixel_sha256(pixels):
    """sha256 of ``b'HxWxC:'`` followed by the uint8 pixels, row-major."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    h = hashlib.sha256('x'.join(map(str, pixels.shape)).encode() + b':')
    h.update(pixels.tobytes())
    return h.hexdigest()


def file_sha256(data):
    return hashlib.sha256(data).hexdigest()


def read_bytes(path):
    with open(path, 'rb') as f:
        return f.read()


def write_atomic(path, data):
    """Write ``data`` to ``path`` under a temporary name, then rename."""
    tmp = f'{path}.part-{os.getpid()}'
    with open(tmp, 'wb') as f:
        f.write(data)
    os.replace(tmp, path)


def decode_webp(data):
    """The RGB pixels (H, W, 3) uint8 of a WebP file's bytes."""
    if features.check('webp'):
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            mode = img.mode
            pixels = np.asarray(img)
        if mode == 'RGBA' and (pixels[..., 3] == 255).all():
            pixels = pixels[..., :3]
        elif mode != 'RGB':
            raise ValueError(f'decodes to mode {mode}, not RGB')
        return pixels
    if cv2 is None:
        raise RuntimeError('neither Pillow (without WebP support here) nor '
                           'OpenCV can decode WebP')
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if pixels is None:
        raise ValueError('not a WebP image OpenCV can read')
    return pixels[..., ::-1]


def encode_png(pixels):
    """PNG bytes of RGB pixels, fast (compression 1)."""
    if cv2 is not None:
        ok, buf = cv2.imencode('.png', np.ascontiguousarray(pixels[..., ::-1]),
                               [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise OSError('OpenCV could not encode a PNG')
        return buf.tobytes()
    out = io.BytesIO()
    Image.fromarray(pixels, 'RGB').save(out, 'PNG', compress_level=1)
    return out.getvalue()


def png_bit_depth(data):
    """Bit depth and colour type of a PNG's bytes (from its IHDR)."""
    if data[:8] != b'\x89PNG\r\n\x1a\n' or data[12:16] != b'IHDR':
        return None, None
    return data[24], data[25]


def read_stems(list_file):
    with open(list_file) as f:
        return [line.strip() for line in f if line.strip()]


def fmt_mib(nbytes):
    return f'{nbytes / MIB:.2f} MiB'


def run_tasks(func, tasks, jobs):
    """``func`` over ``tasks`` in order; a pool of ``jobs`` processes
    when that helps."""
    if jobs <= 1 or len(tasks) <= 1:
        yield from map(func, tasks)
        return
    with multiprocessing.Pool(min(jobs, len(tasks))) as pool:
        yield from pool.imap(func, tasks, chunksize=2)


# --------------------------------------------------------------------------
# pack


def check_source(src, order, limit):
    """``{split: [stems]}`` of SegNet's CamVid folder ``src``; ends with
    :func:`fail` saying what is missing."""
    if not osp.isdir(src):
        fail(f'{src}: no such folder (expected SegNet\'s CamVid folder '
             'with train.txt, train/, trainannot/, ...)')
    missing = []
    for split in order:
        if not osp.isfile(osp.join(src, split + '.txt')):
            missing.append(split + '.txt')
        for folder in (split, split + 'annot'):
            if not osp.isdir(osp.join(src, folder)):
                missing.append(folder + '/')
    if missing:
        fail(f'{src} is not SegNet\'s CamVid folder: missing '
             f'{", ".join(missing)}')
    stems = {}
    for split in order:
        list_file = osp.join(src, split + '.txt')
        stems[split] = read_stems(list_file)
        if not stems[split]:
            fail(f'{list_file}: empty file list')
        bad = [s for s in stems[split] if '/' in s or s.endswith('.png')]
        if bad:
            fail(f'{list_file}: expected bare file stems (no folder, no '
                 f'suffix), got {bad[0]!r}')
        if limit:
            stems[split] = stems[split][:limit]
        for stem in stems[split]:
            for folder in (split, split + 'annot'):
                if not osp.isfile(osp.join(src, folder, stem + '.png')):
                    missing.append(f'{folder}/{stem}.png')
    if missing:
        more = f' and {len(missing) - 5} more' if len(missing) > 5 else ''
        fail(f'{src}: files listed in the .txt lists are missing: '
             f'{", ".join(missing[:5])}{more}')
    return stems


def prepare_out_dir(out_dir, overwrite):
    """Make sure ``out_dir`` is empty (or holds only chunks and
    ``overwrite`` is set: those are removed)."""
    if osp.exists(out_dir) and not osp.isdir(out_dir):
        fail(f'{out_dir}: exists and is not a folder')
    entries = sorted(os.listdir(out_dir)) if osp.isdir(out_dir) else []
    if not entries:
        os.makedirs(out_dir, exist_ok=True)
        return
    if not overwrite:
        fail(f'{out_dir} is not empty ({len(entries)} entries); use '
             '--overwrite to replace the chunks in it')
    others = [e for e in entries if not (CHUNK_RE.match(e) or e == PARTIAL)]
    if others:
        fail(f'{out_dir}: --overwrite replaces only chunk folders '
             f'(camvid-NN), but it also holds {", ".join(others[:5])}; '
             'choose another OUT_DIR')
    for entry in entries:
        shutil.rmtree(osp.join(out_dir, entry))


def _encode_pair(task):
    """Worker of ``pack``: (entry updates, webp bytes, label bytes) or an
    error message."""
    img_file, ann_file, method = task
    png = read_bytes(img_file)
    depth, colour = png_bit_depth(png)
    if (depth, colour) != (8, 2):
        return f'{img_file}: expected an 8-bit RGB PNG (bit depth {depth}, ' \
            f'colour type {colour})'
    with Image.open(io.BytesIO(png)) as img:
        img.load()
        pixels = np.asarray(img)
        out = io.BytesIO()
        img.save(out, 'WEBP', lossless=True, quality=100, method=method)
    webp = out.getvalue()
    digest = pixel_sha256(pixels)
    if pixel_sha256(decode_webp(webp)) != digest:
        return f'{img_file}: the lossless WebP does not decode to the same ' \
            'pixels (WebP encoder of this Pillow is not lossless?)'
    label = read_bytes(ann_file)
    return (dict(shape=list(pixels.shape), pixel_sha256=digest), webp,
            label)


def _entry_cost(entry):
    return len(json.dumps(entry, sort_keys=True)) + 2  # ',\n'


def _manifest_text(header, entries):
    """``manifest.json``: the header's keys, then one line per file."""
    head = json.dumps(header, indent=1, sort_keys=True)[:-2]
    lines = ',\n'.join(json.dumps(e, sort_keys=True) for e in entries)
    return f'{head},\n "files": [\n{lines}\n]}}\n'


class ChunkWriter:
    """Fills chunk folders in order, each at most ``max_bytes`` in all."""

    def __init__(self, root, max_bytes):
        self.root = root
        self.max_bytes = max_bytes
        self.chunks = []  # [(entries, data bytes)]

    def _new_chunk(self):
        self.chunks.append(([], 0))
        os.makedirs(self.path(len(self.chunks)))

    def path(self, index):
        return osp.join(self.root, CHUNK_NAME.format(index))

    def add(self, items, what):
        """Put ``items`` ([(entry, bytes)]) into one chunk together."""
        cost = sum(len(data) + _entry_cost(e) for e, data in items)
        if cost > self.max_bytes - HEADER_RESERVE:
            fail(f'--max-mib {self.max_bytes / MIB:g} is too small: {what} '
                 f'needs {(cost + HEADER_RESERVE) / 1024:.1f} KiB in one '
                 'chunk')
        if not self.chunks or (self.chunks[-1][1] + cost >
                               self.max_bytes - HEADER_RESERVE):
            self._new_chunk()
        entries, used = self.chunks[-1]
        for entry, data in items:
            path = osp.join(self.path(len(self.chunks)), entry['path'])
            os.makedirs(osp.dirname(path), exist_ok=True)
            with open(path, 'wb') as f:
                f.write(data)
            entries.append(entry)
        self.chunks[-1] = (entries, used + cost)

    def finish(self, header):
        """Write the manifests; the pack's id hashes every chunk's
        entries."""
        pack_id = hashlib.sha256(json.dumps(
            [entries for entries, _ in self.chunks],
            sort_keys=True).encode()).hexdigest()
        sizes = []
        for index, (entries, used) in enumerate(self.chunks, 1):
            text = _manifest_text(
                dict(header, pack_id=pack_id, chunk=index,
                     chunks=len(self.chunks)), entries)
            with open(osp.join(self.path(index), MANIFEST), 'w') as f:
                f.write(text)
            size = folder_size(self.path(index))
            if size > self.max_bytes:  # HEADER_RESERVE too small: a bug
                fail(f'{CHUNK_NAME.format(index)}: {size} bytes, above '
                     f'--max-mib ({self.max_bytes} bytes)')
            sizes.append(size)
        return sizes


def folder_size(path):
    return sum(
        osp.getsize(osp.join(d, f)) for d, _, files in os.walk(path)
        for f in files)


def pack(args):
    start = time.time()
    if len(set(args.order)) != len(args.order):
        fail(f'--order names a split twice: {" ".join(args.order)}')
    src = osp.abspath(args.src)
    out_dir = osp.abspath(args.out_dir)
    if out_dir == src or out_dir.startswith(src + os.sep):
        fail(f'OUT_DIR {args.out_dir} is inside SRC {args.src}')
    stems = check_source(src, args.order, args.limit)
    prepare_out_dir(out_dir, args.overwrite)
    staging = osp.join(out_dir, PARTIAL)
    os.makedirs(staging)
    try:
        writer = ChunkWriter(staging, int(args.max_mib * MIB))
        # chunk 1: the lists (cut to --limit) and README.md
        first = []
        for split in args.order:
            list_file = osp.join(src, split + '.txt')
            if args.limit:
                data = ''.join(s + '\n' for s in stems[split]).encode()
            else:
                data = read_bytes(list_file)
            first.append((dict(path=split + '.txt', original=split + '.txt',
                               split=split, kind='list',
                               sha256=file_sha256(data), size=len(data)),
                          data))
        if osp.isfile(osp.join(src, README)):
            data = read_bytes(osp.join(src, README))
            first.append((dict(path=README, original=README, kind='readme',
                               sha256=file_sha256(data), size=len(data)),
                          data))
        writer.add(first, 'the .txt lists and README.md')

        pairs = [(split, stem) for split in args.order
                 for stem in stems[split]]
        tasks = [(osp.join(src, split, stem + '.png'),
                  osp.join(src, split + 'annot', stem + '.png'), args.method)
                 for split, stem in pairs]
        print(f'pack: {len(pairs)} images of {src} '
              f'({", ".join(f"{s} {len(stems[s])}" for s in args.order)}), '
              f'lossless WebP method {args.method}, {args.jobs} jobs')
        step = max(1, len(pairs) // 10)
        for done, ((split, stem), result) in enumerate(
                zip(pairs, run_tasks(_encode_pair, tasks, args.jobs)), 1):
            if isinstance(result, str):
                fail(result)
            image, webp, label = result
            name = f'{split}/{stem}.png'
            ann_name = f'{split}annot/{stem}.png'
            writer.add([
                (dict(path=f'{split}/{stem}.webp', original=name,
                      split=split, stem=stem, kind='image', size=len(webp),
                      **image), webp),
                (dict(path=ann_name, original=ann_name, split=split,
                      stem=stem, kind='label', sha256=file_sha256(label),
                      size=len(label)), label),
            ], name)
            if done % step == 0 or done == len(pairs):
                print(f'  {done}/{len(pairs)} images, '
                      f'{len(writer.chunks)} chunk(s), '
                      f'{time.time() - start:.0f} s', flush=True)
        header = dict(format=FORMAT, order=list(args.order),
                      limit=args.limit, max_mib=args.max_mib,
                      splits={s: len(stems[s]) for s in args.order})
        sizes = writer.finish(header)
        for index in range(1, len(sizes) + 1):
            name = CHUNK_NAME.format(index)
            os.replace(osp.join(staging, name), osp.join(out_dir, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    print(f'{len(sizes)} chunks in {out_dir} (at most {args.max_mib:g} MiB '
          'each):')
    for index, ((entries, _), size) in enumerate(zip(writer.chunks, sizes),
                                                 1):
        counts = {}
        for e in entries:
            if e['kind'] == 'image':
                counts[e['split']] = counts.get(e['split'], 0) + 1
        what = ', '.join(f'{s} {n}' for s, n in counts.items()) or 'none'
        print(f'  {CHUNK_NAME.format(index)}: {fmt_mib(size)}, '
              f'{len(entries) + 1} files, images: {what}')
    total = sum(sizes)
    source = sum(
        osp.getsize(osp.join(src, folder, stem + '.png')) for split in stems
        for stem in stems[split] for folder in (split, split + 'annot'))
    print(f'total {fmt_mib(total)} (source PNGs {fmt_mib(source)}), '
          f'{time.time() - start:.1f} s')
    return 0


# --------------------------------------------------------------------------
# unpack


def _safe_rel(path):
    return (isinstance(path, str) and path and not osp.isabs(path)
            and '..' not in path.split('/') and '\\' not in path)


def load_manifest(chunk_dir):
    path = osp.join(chunk_dir, MANIFEST)
    if not osp.isdir(chunk_dir):
        fail(f'{chunk_dir}: no such chunk folder')
    if not osp.isfile(path):
        fail(f'{chunk_dir}: no {MANIFEST} (not a chunk written by '
             '"camvid_chunks.py pack")')
    try:
        with open(path) as f:
            manifest = json.load(f)
    except ValueError as e:
        fail(f'{path}: unreadable manifest ({e})')
    keys = ('format', 'pack_id', 'chunk', 'chunks', 'order', 'splits',
            'files')
    if not isinstance(manifest, dict) or any(k not in manifest
                                             for k in keys):
        fail(f'{path}: not a manifest of "camvid_chunks.py pack" (needs '
             f'{", ".join(keys)})')
    if manifest['format'] != FORMAT:
        fail(f'{path}: format {manifest["format"]!r}, this script reads '
             f'{FORMAT!r}')
    if not 1 <= manifest['chunk'] <= manifest['chunks']:
        fail(f'{path}: chunk index {manifest["chunk"]} is outside '
             f'1..{manifest["chunks"]}')
    for entry in manifest['files']:
        if not (_safe_rel(entry.get('path'))
                and _safe_rel(entry.get('original'))):
            fail(f'{path}: bad file name in {entry}')
    return manifest


def check_consistent(chunk_dirs, manifests, state):
    """All chunks given (and those already in DEST) are of one pack."""
    seen = {}
    ref_dir, ref = chunk_dirs[0], manifests[0]
    for chunk_dir, m in zip(chunk_dirs, manifests):
        if (m['pack_id'], m['chunks']) != (ref['pack_id'], ref['chunks']):
            fail(f'{chunk_dir} is chunk {m["chunk"]} of {m["chunks"]} of '
                 f'pack {m["pack_id"][:12]}, but {ref_dir} is chunk '
                 f'{ref["chunk"]} of {ref["chunks"]} of pack '
                 f'{ref["pack_id"][:12]}: chunks of different packs')
        if m['chunk'] in seen:
            fail(f'{chunk_dir} and {seen[m["chunk"]]} are both chunk '
                 f'{m["chunk"]} of {m["chunks"]}')
        seen[m['chunk']] = chunk_dir
    if state and (state['pack_id'], state['chunks']) != (ref['pack_id'],
                                                         ref['chunks']):
        fail(f'the destination holds chunks of another pack (pack '
             f'{state["pack_id"][:12]}, {state["chunks"]} chunks) than '
             f'{ref_dir} (pack {ref["pack_id"][:12]}, {ref["chunks"]} '
             'chunks); unpack into an empty --out')


def read_state(dest):
    path = osp.join(dest, STATE)
    if not osp.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as e:
        fail(f'{path}: unreadable ({e}); remove it and unpack all chunks '
             'again')


def write_state(dest, state):
    write_atomic(osp.join(dest, STATE),
                 json.dumps(state, indent=1, sort_keys=True).encode())


def _unpack_entry(task):
    """Worker of ``unpack``: None, or an error message naming the file."""
    chunk_dir, entry, dest = task
    src = osp.join(chunk_dir, entry['path'])
    shown = osp.join(osp.basename(osp.normpath(chunk_dir)), entry['path'])
    if not osp.isfile(src):
        return f'{shown}: missing (listed in {MANIFEST})'
    data = read_bytes(src)
    if entry['kind'] == 'image':
        try:
            pixels = decode_webp(data)
        except Exception as e:  # noqa: B902  (any decoder error)
            return f'{shown}: cannot decode ({e})'
        if (list(pixels.shape) != entry['shape']
                or pixel_sha256(pixels) != entry['pixel_sha256']):
            return f'hash mismatch: {shown} decodes to pixels that differ ' \
                f'from the original {entry["original"]} (shape ' \
                f'{list(pixels.shape)}, expected {entry["shape"]})'
        data = encode_png(pixels)
    elif file_sha256(data) != entry['sha256']:
        return f'hash mismatch: {shown} differs from the original ' \
            f'{entry["original"]}'
    target = osp.join(dest, entry['original'])
    os.makedirs(osp.dirname(target), exist_ok=True)
    write_atomic(target, data)
    return None


def check_complete(dest, state):
    """None when DEST is complete, else the message saying what is
    missing."""
    splits = state['order'] if state else SPLITS
    problems = []
    if state:
        todo = [i for i in range(1, state['chunks'] + 1)
                if i not in state['done']]
        if todo:
            problems.append(
                f'chunks {", ".join(CHUNK_NAME.format(i) for i in todo)} '
                f'of {state["chunks"]} not unpacked')
    else:
        problems.append('no chunk unpacked')
    missing = []
    for split in splits:
        list_file = osp.join(dest, split + '.txt')
        if not osp.isfile(list_file):
            missing.append(f'{split}.txt')
            continue
        for stem in read_stems(list_file):
            for folder in (split, split + 'annot'):
                if not osp.isfile(osp.join(dest, folder, stem + '.png')):
                    missing.append(f'{folder}/{stem}.png')
    if missing:
        hit = {m.split('/')[0].replace('annot', '') for m in missing}
        splits_hit = [s for s in splits if s in hit]
        where = (['lists of chunk 1']
                 if any('/' not in m for m in missing) else [])
        if splits_hit:
            where.append(f'split(s) {", ".join(splits_hit)}')
        shown = ', '.join(missing[:20])
        more = f' and {len(missing) - 20} more' if len(missing) > 20 else ''
        problems.append(f'{len(missing)} files missing ({"; ".join(where)})'
                        f': {shown}{more}')
    if not problems:
        return None
    return f'{dest} is incomplete: {"; ".join(problems)}'


def unpack(args):
    dest = osp.abspath(args.out)
    if not args.chunk_dirs and not args.check_complete:
        fail('nothing to do: give chunk folders and/or --check-complete')
    if osp.exists(dest) and not osp.isdir(dest):
        fail(f'--out {args.out}: exists and is not a folder')
    state = read_state(dest)
    if args.chunk_dirs:
        manifests = [load_manifest(d) for d in args.chunk_dirs]
        check_consistent(args.chunk_dirs, manifests, state)
        os.makedirs(dest, exist_ok=True)
        if state is None:
            ref = manifests[0]
            state = dict(format=FORMAT, pack_id=ref['pack_id'],
                         chunks=ref['chunks'], splits=ref['splits'],
                         order=ref['order'], done=[])
        for chunk_dir, m in sorted(zip(args.chunk_dirs, manifests),
                                   key=lambda x: x[1]['chunk']):
            name = f'{chunk_dir} (chunk {m["chunk"]} of {m["chunks"]})'
            if m['chunk'] in state['done']:
                print(f'{name}: already unpacked in {dest}, skipped')
                continue
            start = time.time()
            tasks = [(chunk_dir, entry, dest) for entry in m['files']]
            errors = [e for e in run_tasks(_unpack_entry, tasks, args.jobs)
                      if e]
            if errors:
                more = f' (and {len(errors) - 1} more)' if len(
                    errors) > 1 else ''
                fail(f'{errors[0]}{more}')
            state['done'] = sorted(state['done'] + [m['chunk']])
            write_state(dest, state)
            images = sum(e['kind'] == 'image' for e in m['files'])
            print(f'{name}: {len(tasks)} files verified and written to '
                  f'{dest} ({images} images pixel-exact), '
                  f'{time.time() - start:.1f} s', flush=True)
    if args.check_complete:
        problem = check_complete(dest, state)
        if problem:
            fail(problem, status=1)
        counts = ', '.join(f'{s} {len(read_stems(osp.join(dest, s + ".txt")))}'
                           for s in state['order'])
        print(f'complete: {dest} holds all {state["chunks"]} chunks '
              f'({counts} image/label pairs)')
    return 0


# --------------------------------------------------------------------------


def parse_args(argv=None):
    parser = cli.OneLineArgumentParser(
        description='Pack SegNet\'s CamVid into chunk folders of lossless '
        'WebP that fit one call to the GPU machine, and unpack them there.')
    sub = parser.add_subparsers(dest='command', required=True,
                                metavar='{pack,unpack}')
    p = sub.add_parser('pack', help='write the chunks')
    p.add_argument('src', metavar='SRC',
                   help='SegNet CamVid folder (train.txt, train/, '
                   'trainannot/, ...)')
    p.add_argument('out_dir', metavar='OUT_DIR',
                   help='folder for camvid-01/, camvid-02/, ... (empty or '
                   'new)')
    p.add_argument('--max-mib', type=cli.positive_float, default=40.,
                   help='most MiB per chunk, manifest included (default 40)')
    p.add_argument('--order', nargs='+', choices=SPLITS,
                   default=list(SPLITS),
                   help='splits to pack, in the order the chunks are filled '
                   '(default: train val test)')
    p.add_argument('--limit', type=cli.positive_int, default=None,
                   help='at most N images per split (tests, smoke runs); '
                   'the lists in chunk 1 are cut to match')
    p.add_argument('--method', type=int, choices=range(7), default=5,
                   help='WebP effort 0..6 (default 5: on CamVid, 6 gives '
                   'the same size at 5 times the time)')
    p.add_argument('--jobs', type=cli.positive_int,
                   default=os.cpu_count() or 1,
                   help='encoding processes (default: all cores)')
    p.add_argument('--overwrite', action='store_true',
                   help='replace the chunk folders already in OUT_DIR')
    u = sub.add_parser('unpack',
                       help='verify chunks and write SegNet\'s layout')
    u.add_argument('chunk_dirs', nargs='*', metavar='CHUNK_DIR',
                   help='chunk folders (camvid-NN) of one pack, any order')
    u.add_argument('--out', required=True, metavar='DEST',
                   help='SegNet-layout folder to write (train/, trainannot/, '
                   'train.txt, ...)')
    u.add_argument('--jobs', type=cli.positive_int,
                   default=os.cpu_count() or 1,
                   help='decoding processes (default: all cores)')
    u.add_argument('--check-complete', action='store_true',
                   help='then exit 1, naming what is missing, unless DEST '
                   'holds every chunk and every file of the lists')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    return pack(args) if args.command == 'pack' else unpack(args)


if __name__ == '__main__':
    sys.exit(main())
