"""Dataset converters: round trips on tiny files in the official formats.

Each test writes a few 8x10 frames exactly as the official release stores
them (MATLAB v7.3/HDF5 with MATLAB's transposed axes, MATLAB v5 files, the
SegNet and DeepLab folder layouts), converts them, and checks the labels,
the split sizes, the command line, and that malformed input is refused with
a message naming the file and nothing written.
"""
import importlib.util
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

H, W = 8, 10
TOOLS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
                 'tools', 'dataset_converters')


def load_tool(name):
    spec = importlib.util.spec_from_file_location(
        f'dataset_converters_{name}', osp.join(TOOLS, name + '.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli(name, *args):
    """The converter as a separate process: (exit code, stderr)."""
    result = subprocess.run(
        [sys.executable, osp.join(TOOLS, name + '.py'), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120)
    return result.returncode, result.stderr


def run_main(capsys, name, *args):
    """The converter's ``main`` in this process (faster): (exit code,
    stderr); an uncaught exception fails the test."""
    capsys.readouterr()
    code = load_tool(name).main([str(a) for a in args])
    return code, capsys.readouterr().err


def read_png(path):
    return np.array(Image.open(path))


def assert_refused(run, out_dir, *names):
    """Non-zero exit, an ``error:`` line naming the files, no traceback,
    no output folder and no hidden partial folder left next to it."""
    code, stderr = run
    assert code != 0
    assert 'error:' in stderr
    assert 'Traceback' not in stderr
    for name in names:
        assert name in stderr, stderr
    assert not osp.exists(out_dir)
    parent = osp.dirname(out_dir)
    if osp.isdir(parent):
        assert not [n for n in os.listdir(parent) if '.partial-' in n]


h5py = sio = None  # the test dependencies; see matlab_io


@pytest.fixture(scope='module', autouse=True)
def matlab_io(require_module):
    """h5py and scipy.io, which the tests write MATLAB files with (test
    dependencies): the whole file skips without them (fails under
    ``CI=true``)."""
    global h5py, sio
    h5py = require_module('h5py')
    sio = require_module('scipy.io')


def matlab_v73(path):
    """An HDF5 file with the 512-byte header MATLAB writes for -v7.3."""
    return h5py.File(path, 'w', userblock_size=512)


def finish_matlab_v73(path):
    text = b'MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .'
    header = text.ljust(116) + bytes(8) + b'\x00\x02IM'
    with open(path, 'r+b') as f:
        f.write(header)


def random_rgb(rng, h=H, w=W):
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


# --------------------------------------------------------------------------
# NYUDv2
# --------------------------------------------------------------------------
NYU_N = 5
NYU_TRAIN = [1, 3, 4]
NYU_TEST = [2, 5]


def nyu_map_class():
    """A 894 -> 40 mapping that uses every 40-class index."""
    return (np.arange(894) % 40 + 1).astype(np.float64)


def make_nyudv2(root, labels=None, train=NYU_TRAIN, test=NYU_TEST,
                mapping_v73=False, label_size=(H, W)):
    """Write the three official NYUDv2 files; returns their paths and the
    arrays in MATLAB's (H, W, ...) order."""
    rng = np.random.default_rng(0)
    os.makedirs(root, exist_ok=True)
    images = rng.integers(0, 256, size=(H, W, 3, NYU_N), dtype=np.uint8)
    if labels is None:
        labels = rng.integers(0, 895, size=label_size + (NYU_N, ))
        labels[0, 0, :] = 0  # an unlabelled pixel in every frame
        labels[0, 1, :] = 894
    labeled = osp.join(root, 'nyu_depth_v2_labeled.mat')
    with matlab_v73(labeled) as f:
        # MATLAB v7.3 writes column-major: HDF5 sees the axes reversed
        f.create_dataset('images', data=images.transpose(3, 2, 1, 0))
        f.create_dataset(
            'labels', data=labels.astype(np.uint16).transpose(2, 1, 0))
    finish_matlab_v73(labeled)
    mapping = osp.join(root, 'classMapping40.mat')
    if mapping_v73:
        with matlab_v73(mapping) as f:
            f.create_dataset('mapClass', data=nyu_map_class()[:, None])
        finish_matlab_v73(mapping)
    else:
        sio.savemat(mapping, dict(mapClass=nyu_map_class()[None]))
    splits = osp.join(root, 'splits.mat')
    sio.savemat(
        splits,
        dict(
            trainNdxs=np.array(train, np.float64)[:, None],
            testNdxs=np.array(test, np.float64)[:, None]))
    return (labeled, mapping, splits), images, labels


@pytest.mark.parametrize('mapping_v73', [False, True])
def test_nyudv2_round_trip(tmp_path, mapping_v73):
    tool = load_tool('nyudv2')
    files, images, labels = make_nyudv2(
        tmp_path / 'src', mapping_v73=mapping_v73)
    out = tmp_path / 'out'
    counts = tool.convert_nyudv2(*files, str(out))
    assert counts == dict(train=3, test=2)
    lut = np.concatenate([[255], nyu_map_class() - 1]).astype(np.uint8)
    for split, indices in (('train', NYU_TRAIN), ('test', NYU_TEST)):
        names = sorted(os.listdir(out / 'ann_dir' / split))
        assert names == [f'{i:04d}.png' for i in indices]
        assert sorted(os.listdir(out / 'img_dir' / split)) == names
        for i in indices:
            img = read_png(out / 'img_dir' / split / f'{i:04d}.png')
            np.testing.assert_array_equal(img, images[..., i - 1])
            ann = read_png(out / 'ann_dir' / split / f'{i:04d}.png')
            np.testing.assert_array_equal(ann, lut[labels[..., i - 1]])
            assert ann[0, 0] == 255 and ann[0, 1] == (894 - 1) % 40


def test_nyudv2_cli(tmp_path):
    files, _, _ = make_nyudv2(tmp_path / 'src')
    out = tmp_path / 'data' / 'nyudv2'
    code, err = run_cli('nyudv2', *files, '-o', out)
    assert code == 0, err
    assert len(os.listdir(out / 'ann_dir' / 'train')) == 3
    assert len(os.listdir(out / 'img_dir' / 'test')) == 2
    # an existing output is refused, and replaced with --overwrite
    code, err = run_cli('nyudv2', *files, '-o', out)
    assert code == 2 and '--overwrite' in err and 'Traceback' not in err
    code, err = run_cli('nyudv2', *files, '-o', out, '--overwrite')
    assert code == 0, err


def test_nyudv2_refuses_label_above_894(tmp_path, capsys):
    labels = np.ones((H, W, NYU_N), np.int64)
    labels[3, 4, 3] = 900  # frame 4, converted after frames 1 and 3
    files, _, _ = make_nyudv2(tmp_path / 'src', labels=labels)
    out = tmp_path / 'out'
    run = run_main(capsys, 'nyudv2', *files, '-o', out)
    assert_refused(run, str(out), 'nyu_depth_v2_labeled.mat', 'frame 4',
                   '900')


@pytest.mark.parametrize('train,test,message', [
    ([1, 3, 6], NYU_TEST, 'trainNdxs'),
    (NYU_TRAIN, [0, 2], 'testNdxs'),
    ([1, 2], [2, 5], 'both'),
])
def test_nyudv2_refuses_bad_split(tmp_path, capsys, train, test, message):
    files, _, _ = make_nyudv2(tmp_path / 'src', train=train, test=test)
    out = tmp_path / 'out'
    run = run_main(capsys, 'nyudv2', *files, '-o', out)
    assert_refused(run, str(out), 'splits.mat', message)


def test_nyudv2_refuses_size_mismatch_and_missing_file(tmp_path, capsys):
    tool = load_tool('nyudv2')
    files, _, _ = make_nyudv2(tmp_path / 'src', label_size=(H, W + 1))
    out = tmp_path / 'out'
    with pytest.raises(ValueError, match='nyu_depth_v2_labeled.mat.*sizes'):
        tool.convert_nyudv2(*files, str(out))
    assert not out.exists()
    run = run_main(capsys, 'nyudv2', tmp_path / 'missing.mat', *files[1:],
                   '-o', out)
    assert_refused(run, str(out), 'missing.mat', 'not found')


# --------------------------------------------------------------------------
# SUN RGB-D
# --------------------------------------------------------------------------
SUN_PREFIX = '/n/fs/sun3d/data/SUNRGBD/'
SUN_FOLDERS = [
    'kv1/NYUdata/NYU0001', 'kv2/kinect2data/000002_2014-05-26_rgbf000103',
    'realsense/lg/2014_10_24-17_40_09-1311000037', 'xtion/sun3ddata/a/b/c',
    'kv1/b3dodata/img_0063'
]
SUN_TRAIN = [0, 2, 3]  # 0-based SUNRGBDMeta entries
SUN_TEST = [1]  # entry 4 is in neither split


def make_sunrgbd(root, labels=None, image_size=(H, W), missing_image=None):
    """Write the SUNRGBD image folders and the three toolbox files."""
    rng = np.random.default_rng(1)
    sun_dir, toolbox = root / 'SUNRGBD', root / 'SUNRGBDtoolbox'
    os.makedirs(toolbox / 'Metadata')
    os.makedirs(toolbox / 'traintestSUNRGBD')
    n = len(SUN_FOLDERS)
    meta = np.zeros((1, n),
                    dtype=[('sequenceName', 'O'), ('rgbpath', 'O'),
                           ('rgbname', 'O'), ('sensorType', 'O')])
    for i, folder in enumerate(SUN_FOLDERS):
        name = f'{i:07d}.jpg'
        os.makedirs(sun_dir / folder / 'image')
        if i != missing_image:
            Image.fromarray(random_rgb(rng, *image_size)).save(
                sun_dir / folder / 'image' / name, quality=90)
        meta[0, i] = ('SUNRGBD/' + folder,
                      SUN_PREFIX + folder + '/image/' + name, name,
                      folder.split('/')[0])
    sio.savemat(toolbox / 'Metadata' / 'SUNRGBDMeta.mat',
                dict(SUNRGBDMeta=meta))
    split = dict(
        alltrain=np.array([SUN_PREFIX + SUN_FOLDERS[i] for i in SUN_TRAIN],
                          dtype=object)[None],
        # a 1x1 cell, with a trailing slash
        alltest=np.array([SUN_PREFIX + SUN_FOLDERS[i] + '/'
                          for i in SUN_TEST], dtype=object)[None])
    sio.savemat(toolbox / 'traintestSUNRGBD' / 'allsplit.mat', split)
    if labels is None:
        labels = [rng.integers(0, 38, size=(H, W)) for _ in range(n)]
        for label in labels:
            label[0, 0], label[0, 1] = 0, 37
    seg_mat = toolbox / 'Metadata' / 'SUNRGBD2Dseg.mat'
    with matlab_v73(seg_mat) as f:
        refs = f.create_dataset(
            'SUNRGBD2Dseg/seglabel', (n, 1), dtype=h5py.ref_dtype)
        for i, label in enumerate(labels):
            # MATLAB v7.3: each cell is an HDF5 dataset, axes reversed
            ds = f.create_dataset(
                f'#refs#/{i}', data=np.asarray(label, np.uint16).T)
            refs[i, 0] = ds.ref
    finish_matlab_v73(seg_mat)
    return sun_dir, toolbox, labels


def test_sunrgbd_round_trip(tmp_path):
    tool = load_tool('sunrgbd')
    sun_dir, toolbox, labels = make_sunrgbd(tmp_path)
    out = tmp_path / 'out'
    counts = tool.convert_sunrgbd(str(sun_dir), str(toolbox), str(out))
    assert counts == dict(train=3, test=1)
    lut = np.array([255] + list(range(37)), np.uint8)
    for split, entries in (('train', SUN_TRAIN), ('test', SUN_TEST)):
        names = sorted(os.listdir(out / 'ann_dir' / split))
        assert names == [f'{i + 1:05d}.png' for i in entries]
        for i in entries:
            ann = read_png(out / 'ann_dir' / split / f'{i + 1:05d}.png')
            np.testing.assert_array_equal(ann, lut[labels[i]])
            assert ann[0, 0] == 255 and ann[0, 1] == 36
            src = sun_dir / SUN_FOLDERS[i] / 'image' / f'{i:07d}.jpg'
            dst = out / 'img_dir' / split / f'{i + 1:05d}.jpg'
            assert dst.read_bytes() == src.read_bytes()


def test_sunrgbd_cli(tmp_path):
    sun_dir, toolbox, _ = make_sunrgbd(tmp_path)
    out = tmp_path / 'data' / 'sunrgbd'
    code, err = run_cli('sunrgbd', sun_dir, toolbox, '-o', out)
    assert code == 0, err
    assert len(os.listdir(out / 'img_dir' / 'train')) == 3
    assert len(os.listdir(out / 'ann_dir' / 'test')) == 1


def test_sunrgbd_refuses_bad_label(tmp_path, capsys):
    labels = [np.ones((H, W), np.int64) for _ in SUN_FOLDERS]
    labels[3][2, 2] = 40  # the third train frame
    sun_dir, toolbox, _ = make_sunrgbd(tmp_path, labels=labels)
    out = tmp_path / 'out'
    run = run_main(capsys, 'sunrgbd', sun_dir, toolbox, '-o', out)
    assert_refused(run, str(out), 'SUNRGBD2Dseg.mat', 'frame 4', '40')


def test_sunrgbd_refuses_size_mismatch_and_missing_image(tmp_path, capsys):
    tool = load_tool('sunrgbd')
    sun_dir, toolbox, _ = make_sunrgbd(tmp_path / 'a', image_size=(H + 2, W))
    out = tmp_path / 'out'
    with pytest.raises(ValueError, match='differs from image .*.jpg'):
        tool.convert_sunrgbd(str(sun_dir), str(toolbox), str(out))
    assert not out.exists()
    sun_dir, toolbox, _ = make_sunrgbd(tmp_path / 'b', missing_image=2)
    run = run_main(capsys, 'sunrgbd', sun_dir, toolbox, '-o', out)
    assert_refused(run, str(out), '0000002.jpg', 'not found')


# --------------------------------------------------------------------------
# PASCAL-Person-Part
# --------------------------------------------------------------------------
PPP_TRAIN = ['2008_000003', '2008_000008', '2010_000001']
PPP_TEST = ['2008_000026', '2009_000004']


def make_person_part(root, bad=None, label_size=(H, W)):
    """VOC2010 JPEGImages plus the DeepLab release: label PNGs (gray and
    palette) and the two lists (DeepLab's two-column train list, a bare-id
    val list)."""
    rng = np.random.default_rng(2)
    voc, ppp = root / 'VOC2010', root / 'pascal_person_part'
    os.makedirs(voc / 'JPEGImages')
    os.makedirs(ppp / 'pascal_person_part_gt')
    os.makedirs(ppp / 'pascal_person_part_trainval_list')
    labels = {}
    for k, frame_id in enumerate(PPP_TRAIN + PPP_TEST):
        Image.fromarray(random_rgb(rng)).save(
            voc / 'JPEGImages' / f'{frame_id}.jpg')
        label = rng.integers(0, 7, size=label_size).astype(np.uint8)
        label[0, 0] = 255
        if frame_id == bad:
            label[1, 1] = 9
        labels[frame_id] = label
        png = Image.fromarray(label)
        if k % 2:  # DeepLab's labels may be palette PNGs
            png.putpalette([c for i in range(256) for c in (i, i, 0)])
            assert png.mode == 'P'
        png.save(ppp / 'pascal_person_part_gt' / f'{frame_id}.png')
    with open(ppp / 'pascal_person_part_trainval_list' / 'train.txt',
              'w') as f:
        f.writelines(f'/JPEGImages/{i}.jpg /SegmentationPart/{i}.png\n'
                     for i in PPP_TRAIN)
    with open(ppp / 'pascal_person_part_trainval_list' / 'val.txt',
              'w') as f:
        f.writelines(f'{i}\n' for i in PPP_TEST)
    return voc, ppp, labels


def test_person_part_round_trip(tmp_path):
    tool = load_tool('pascal_person_part')
    voc, ppp, labels = make_person_part(tmp_path)
    out = tmp_path / 'out'
    counts = tool.convert_pascal_person_part(str(voc), str(ppp), str(out))
    assert counts == dict(train=3, test=2)
    for split, ids in (('train', PPP_TRAIN), ('test', PPP_TEST)):
        assert sorted(os.listdir(out / 'ann_dir' / split)) == \
            [f'{i}.png' for i in ids]
        for frame_id in ids:
            ann = read_png(out / 'ann_dir' / split / f'{frame_id}.png')
            np.testing.assert_array_equal(ann, labels[frame_id])
            src = voc / 'JPEGImages' / f'{frame_id}.jpg'
            dst = out / 'img_dir' / split / f'{frame_id}.jpg'
            assert dst.read_bytes() == src.read_bytes()


def test_person_part_cli(tmp_path):
    voc, ppp, _ = make_person_part(tmp_path)
    out = tmp_path / 'data' / 'ppp'
    code, err = run_cli('pascal_person_part', voc, ppp, '-o', out)
    assert code == 0, err
    assert len(os.listdir(out / 'img_dir' / 'train')) == 3
    assert len(os.listdir(out / 'ann_dir' / 'test')) == 2


def test_person_part_refuses_bad_input(tmp_path, capsys):
    voc, ppp, _ = make_person_part(tmp_path / 'a', bad='2010_000001')
    out = tmp_path / 'nested' / 'out'
    run = run_main(capsys, 'pascal_person_part', voc, ppp, '-o', out)
    assert_refused(run, str(out), '2010_000001.png', '9')
    assert not (tmp_path / 'nested').exists()

    voc, ppp, _ = make_person_part(tmp_path / 'b', label_size=(H, W - 1))
    run = run_main(capsys, 'pascal_person_part', voc, ppp, '-o', out)
    assert_refused(run, str(out), '2008_000003.png', 'differs')

    voc, ppp, _ = make_person_part(tmp_path / 'c')
    os.remove(ppp / 'pascal_person_part_gt' / '2009_000004.png')
    run = run_main(capsys, 'pascal_person_part', voc, ppp, '-o', out)
    assert_refused(run, str(out), '2009_000004.png', 'not found')


# --------------------------------------------------------------------------
# CamVid (SegNet layout)
# --------------------------------------------------------------------------
CAMVID_SPLITS = dict(
    train=['0001TP_006690', '0001TP_006720'],
    val=['0016E5_07959'],
    test=['0001TP_008550', 'Seq05VD_f00000'])


@pytest.fixture
def make_camvid(write_segnet_camvid):
    """``make_camvid(root, bad_value=None, label_size=(H, W))`` writes the
    CAMVID_SPLITS frames in SegNet's layout and returns their labels
    (void 11 at [0, 0]; ``bad_value`` at [2, 3] of the last test frame)."""

    def make(root, bad_value=None, label_size=(H, W)):
        rng = np.random.default_rng(3)
        labels, splits = {}, {}
        for split, stems in CAMVID_SPLITS.items():
            splits[split] = []
            for stem in stems:
                image = random_rgb(rng)
                label = rng.integers(0, 12, size=label_size).astype(np.uint8)
                label[0, 0] = 11
                labels[stem] = label
                splits[split].append((stem, image, label))
        if bad_value is not None:
            labels[CAMVID_SPLITS['test'][-1]][2, 3] = bad_value
        write_segnet_camvid(root, splits)
        return labels

    return make


def test_camvid_round_trip(tmp_path, make_camvid):
    tool = load_tool('camvid')
    labels = make_camvid(tmp_path / 'CamVid')
    out = tmp_path / 'out'
    counts = tool.convert_camvid(str(tmp_path / 'CamVid'), str(out))
    assert counts == dict(train=2, val=1, test=2)
    for split, stems in CAMVID_SPLITS.items():
        assert sorted(os.listdir(out / 'ann_dir' / split)) == \
            sorted(f'{s}.png' for s in stems)
        for stem in stems:
            ann = read_png(out / 'ann_dir' / split / f'{stem}.png')
            expected = np.where(labels[stem] == 11, 255, labels[stem])
            np.testing.assert_array_equal(ann, expected)
            assert ann[0, 0] == 255
            src = tmp_path / 'CamVid' / split / f'{stem}.png'
            dst = out / 'img_dir' / split / f'{stem}.png'
            assert dst.read_bytes() == src.read_bytes()


def test_camvid_cli(tmp_path, make_camvid):
    make_camvid(tmp_path / 'CamVid')
    out = tmp_path / 'data' / 'camvid'
    os.makedirs(out)  # an existing empty folder is fine
    code, err = run_cli('camvid', tmp_path / 'CamVid', '-o', out)
    assert code == 0, err
    assert len(os.listdir(out / 'img_dir' / 'val')) == 1
    assert len(os.listdir(out / 'ann_dir' / 'test')) == 2


def test_camvid_refuses_bad_input(tmp_path, capsys, make_camvid):
    make_camvid(tmp_path / 'a', bad_value=12)
    out = tmp_path / 'out'
    run = run_main(capsys, 'camvid', tmp_path / 'a', '-o', out)
    assert_refused(run, str(out), 'Seq05VD_f00000.png', '12')

    make_camvid(tmp_path / 'b', label_size=(H + 1, W))
    run = run_main(capsys, 'camvid', tmp_path / 'b', '-o', out)
    assert_refused(run, str(out), '0001TP_006690.png', 'differs')

    make_camvid(tmp_path / 'c')
    os.remove(tmp_path / 'c' / 'val.txt')
    run = run_main(capsys, 'camvid', tmp_path / 'c', '-o', out)
    assert_refused(run, str(out), 'val.txt', 'not found')


def test_refuses_non_empty_output_and_keeps_it(tmp_path, make_camvid):
    tool = load_tool('camvid')
    make_camvid(tmp_path / 'CamVid')
    out = tmp_path / 'out'
    os.makedirs(out)
    (out / 'keep.txt').write_text('mine')
    with pytest.raises(ValueError, match='not empty.*--overwrite'):
        tool.convert_camvid(str(tmp_path / 'CamVid'), str(out))
    assert os.listdir(out) == ['keep.txt']
    # a failing conversion with --overwrite leaves the old output alone
    make_camvid(tmp_path / 'bad', bad_value=200)
    with pytest.raises(ValueError, match='200'):
        tool.convert_camvid(str(tmp_path / 'bad'), str(out), overwrite=True)
    assert os.listdir(out) == ['keep.txt']
    tool.convert_camvid(str(tmp_path / 'CamVid'), str(out), overwrite=True)
    assert sorted(os.listdir(out)) == ['ann_dir', 'img_dir']
    # converting into (a parent of) the source would destroy it: refused
    with pytest.raises(ValueError, match='contains the input'):
        tool.convert_camvid(
            str(tmp_path / 'CamVid'), str(tmp_path), overwrite=True)


def test_camvid_splits_arrive_in_parts(tmp_path, capsys, make_camvid):
    """train+val first (test not there yet), test added later."""
    tool = load_tool('camvid')
    labels = make_camvid(tmp_path / 'CamVid')
    src = tmp_path / 'CamVid'
    for stem in CAMVID_SPLITS['test']:  # the test split has not arrived
        os.remove(src / 'test' / f'{stem}.png')
    out = tmp_path / 'data' / 'camvid'
    code, err = run_main(capsys, 'camvid', src, '-o', out, '--splits',
                         'train', 'val')
    assert code == 0, err
    assert sorted(os.listdir(out / 'img_dir')) == ['train', 'val']
    # test is refused while its images are missing, and nothing changes
    code, err = run_main(capsys, 'camvid', src, '-o', out, '--splits',
                         'test')
    assert code == 2 and 'error:' in err and '0001TP_008550.png' in err
    assert sorted(os.listdir(out / 'img_dir')) == ['train', 'val']
    make_camvid(tmp_path / 'full')
    counts = tool.convert_camvid(str(tmp_path / 'full'), str(out),
                                 splits=['test'])
    assert counts == dict(test=2)
    for sub in ('img_dir', 'ann_dir'):
        assert sorted(os.listdir(out / sub)) == ['test', 'train', 'val']
    assert sorted(os.listdir(tmp_path / 'data')) == ['camvid']  # no leftovers
    ann = read_png(out / 'ann_dir' / 'train' / '0001TP_006690.png')
    np.testing.assert_array_equal(
        ann, np.where(labels['0001TP_006690'] == 11, 255,
                      labels['0001TP_006690']))
    # a split that is already there is replaced only with --overwrite
    with pytest.raises(ValueError,
                       match=r"already holds.*'test'.*--overwrite"):
        tool.convert_camvid(str(tmp_path / 'full'), str(out),
                            splits=['test'])
    tool.convert_camvid(str(tmp_path / 'full'), str(out), splits=['test'],
                        overwrite=True)
    assert len(os.listdir(out / 'img_dir' / 'test')) == 2
    # a folder of another layout is not added to
    other = tmp_path / 'other'
    os.makedirs(other)
    (other / 'keep.txt').write_text('mine')
    with pytest.raises(ValueError, match='not empty'):
        tool.convert_camvid(str(tmp_path / 'full'), str(other),
                            splits=['test'])
    with pytest.raises(ValueError, match='splits must be'):
        tool.convert_camvid(str(tmp_path / 'full'), str(tmp_path / 'x'),
                            splits=['test', 'test'])


# --------------------------------------------------------------------------
# the base dataset configs build their train set on converted fixtures
# --------------------------------------------------------------------------
def convert_fixture(name, tmp_path, make_camvid):
    out = str(tmp_path / 'converted')
    if name == 'nyudv2_40':
        files, _, _ = make_nyudv2(tmp_path / 'src')
        load_tool('nyudv2').convert_nyudv2(*files, out)
    elif name == 'sunrgbd_37':
        sun_dir, toolbox, _ = make_sunrgbd(tmp_path)
        load_tool('sunrgbd').convert_sunrgbd(str(sun_dir), str(toolbox), out)
    elif name == 'pascal_person_part':
        voc, ppp, _ = make_person_part(tmp_path)
        load_tool('pascal_person_part').convert_pascal_person_part(
            str(voc), str(ppp), out)
    else:
        make_camvid(tmp_path / 'CamVid')
        load_tool('camvid').convert_camvid(str(tmp_path / 'CamVid'), out)
    return out


@pytest.mark.parametrize('name,num_train', [('nyudv2_40', 3),
                                            ('sunrgbd_37', 3),
                                            ('pascal_person_part', 3),
                                            ('camvid', 2)])
def test_base_config_builds_train_set(tmp_path, repo_root, name, num_train,
                                      make_camvid):
    from mmengine.config import Config
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules

    import mmseg_refinenet  # noqa: F401
    register_all_modules()
    data_root = convert_fixture(name, tmp_path, make_camvid)
    cfg = Config.fromfile(
        osp.join(repo_root, 'configs', '_base_', 'datasets', name + '.py'))
    for loader in (cfg.train_dataloader, cfg.val_dataloader,
                   cfg.test_dataloader):
        loader.dataset.data_root = data_root
        dataset = DATASETS.build(loader.dataset)
        assert len(dataset) > 0
    train = DATASETS.build(cfg.train_dataloader.dataset)
    assert len(train) == num_train
    sample = train[0]
    seg = sample['data_samples'].gt_sem_seg.data
    num_classes = len(train.metainfo['classes'])
    values = set(seg.unique().tolist())
    assert values <= set(range(num_classes)) | {255}
