"""The quick start's main job runs as a user runs it and learns."""
import json
import os.path as osp
import subprocess
import sys

import cv2


def test_quickstart_trains_evaluates_and_draws(tmp_path, repo_root):
    work_dir = tmp_path / 'qs'
    proc = subprocess.run([
        sys.executable,
        osp.join(repo_root, 'tools', 'quickstart.py'), '--work-dir',
        str(work_dir), '--iters', '60', '--num-train', '32', '--num-val', '6'
    ],
                          cwd=str(tmp_path),
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((work_dir / 'summary.json').read_text())
    assert summary['iterations'] == 60
    # 4 classes: predicting only the background scores ~20 mIoU
    assert summary['mIoU'] > 30, summary
    assert osp.isfile(summary['checkpoint'])
    picture = cv2.imread(summary['predictions'])
    assert picture is not None and picture.shape[1] == 3 * 64 * 4
    assert 'val mIoU' in proc.stdout and summary['predictions'] in proc.stdout
