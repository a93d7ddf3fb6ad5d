"""tools/test.py on bad inputs: a checkpoint of another model and a corrupt
image end with one ``error:`` line, exit 2 and no ``--out`` predictions;
a good run publishes ``--out`` only when complete.

The checkpoint is the quick-start RefineNet at its initial weights (no
training needed); the test set is generated.
"""
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch

from mmseg_refinenet.datasets import generate_synthetic_dataset

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TEST = osp.join(REPO, 'tools', 'test.py')
CONFIG = osp.join(REPO, 'configs', 'quickstart',
                  'refinenet_r18_1xb8-300it_synthetic-64x64.py')


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    from mmseg_refinenet.apis import load_segmentor
    root = tmp_path_factory.mktemp('test_tool')
    data = generate_synthetic_dataset(
        str(root / 'data'), num_train=1, num_val=3, size=(64, 64))
    torch.manual_seed(0)
    model, _, _ = load_segmentor(CONFIG)
    state = model.state_dict()
    good = str(root / 'good.pth')
    torch.save({'meta': {}, 'state_dict': state}, good)
    # the same network for 5 classes instead of 4: another model
    other = dict(state)
    other['decode_head.conv_seg.weight'] = torch.zeros(
        5, *state['decode_head.conv_seg.weight'].shape[1:])
    other['decode_head.conv_seg.bias'] = torch.zeros(5)
    other_path = str(root / 'other.pth')
    torch.save({'meta': {}, 'state_dict': other}, other_path)
    return dict(root=root, data=data, good=good, other=other_path)


def run_test(args, cwd):
    return subprocess.run([sys.executable, TEST, *args],
                          cwd=cwd,
                          capture_output=True,
                          text=True,
                          timeout=600)


def options(data_root, work_dir):
    return [
        '--work-dir',
        str(work_dir), '--cfg-options',
        f'test_dataloader.dataset.data_root={data_root}'
    ]


def assert_clean_error(proc, *words):
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert 'error: ' in last
    for word in words:
        assert word in last, last


def test_checkpoint_of_another_model(setup, tmp_path, run_script_main):
    # refused before the runner is built: main() in this process (a
    # subprocess would import torch and MMSeg again)
    proc = run_script_main(TEST, CONFIG, setup['other'], '--out',
                           tmp_path / 'out',
                           *options(setup['data'], tmp_path / 'work'),
                           cwd=str(tmp_path))
    assert_clean_error(proc, 'other.pth', 'does not fit',
                       'decode_head.conv_seg.weight', 'same config')
    assert not (tmp_path / 'out').exists()


def test_corrupt_image_in_the_test_set(setup, tmp_path):
    data = tmp_path / 'data'
    shutil.copytree(setup['data'], data)
    broken = data / 'img_dir' / 'val' / '0001.png'
    broken.write_bytes(broken.read_bytes()[:60])  # truncated PNG
    out = tmp_path / 'out'
    proc = run_test([CONFIG, setup['good'], '--out', str(out)] +
                    options(data, tmp_path / 'work'),
                    cwd=str(tmp_path))
    assert_clean_error(proc, str(broken), 'could not be decoded')
    # the prediction of image 0000 was made before the failure, but --out
    # only receives a complete set
    assert not out.exists()
    assert not (tmp_path / 'out.partial').exists()


def test_out_is_published_complete(setup, tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'keep.txt').write_text('an earlier file')
    # left in the staging folder by a killed earlier run: not published
    (tmp_path / 'out.partial').mkdir()
    (tmp_path / 'out.partial' / 'stale.png').write_text('killed run')
    proc = run_test([CONFIG, setup['good'], '--out', str(out)] +
                    options(setup['data'], tmp_path / 'work'),
                    cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(os.listdir(out)) == [
        '0000.png', '0001.png', '0002.png', 'keep.txt'
    ]
    assert not (tmp_path / 'out.partial').exists()


def test_out_with_a_list_of_metrics(setup, tmp_path):
    """IoU + trimap (as the CamVid and ``_trimap`` configs): the IoU metric
    writes the predictions; the trimap figures land in the metrics JSON."""
    config = tmp_path / 'with_trimap.py'
    config.write_text(
        f'_base_ = {CONFIG!r}\n'
        "test_evaluator = [dict(type='IoUMetric', iou_metrics=['mIoU']),\n"
        "                  dict(type='TrimapIoUMetric', radii=(1, 2),\n"
        '                       per_class=True)]\n')
    out = tmp_path / 'out'
    proc = run_test([str(config), setup['good'], '--out', str(out)] +
                    options(setup['data'], tmp_path / 'work'),
                    cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(os.listdir(out)) == ['0000.png', '0001.png', '0002.png']
    assert 'mIoU@r2' in proc.stdout + proc.stderr
