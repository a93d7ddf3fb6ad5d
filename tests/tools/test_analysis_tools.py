"""tools/analysis/compare_models.py and plot_curves.py, run as a user would.

compare_models compares the quick-start RefineNet with MMSeg's own UNet
(through the ``mmseg::`` config scope) at 64x64 with few repeats;
plot_curves reads hand-written scalar logs in MMEngine's format.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
COMPARE = osp.join(REPO, 'tools', 'analysis', 'compare_models.py')
PLOT = osp.join(REPO, 'tools', 'analysis', 'plot_curves.py')
OURS = osp.join(REPO, 'configs', 'quickstart',
                'refinenet_r18_1xb8-300it_synthetic-64x64.py')
MMSEG_UNET = 'mmseg::unet/unet-s5-d16_fcn_4xb4-160k_cityscapes-512x1024.py'
TIMEOUT = 300
FIELDS = {
    'config', 'model', 'device', 'torch', 'shape', 'batch', 'params_m',
    'gflops', 'latency_ms', 'throughput_img_s', 'train_step_ms',
    'peak_train_mem_mb', 'ratios'
}


def run(script, *args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS='2')
    return subprocess.run([sys.executable, script, *args], cwd=cwd,
                          env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)


def test_compare_models(tmp_path):
    proc = run(COMPARE, OURS, MMSEG_UNET, '--shape', '64', '64',
               '--repeats', '2', '--warmup', '1', '--out', 'tmp',
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The Markdown table on stdout, one row per config.
    table = [line for line in proc.stdout.splitlines()
             if line.startswith('|')]
    assert len(table) == 4
    assert 'Params (M)' in table[0] and 'GFLOPs' in table[0]
    assert 'refinenet_r18_1xb8-300it_synthetic-64x64' in table[2]
    assert 'unet-s5-d16_fcn' in table[3]
    # Progress per config and measurement.
    assert '[1/2]' in proc.stderr and '[2/2]' in proc.stderr
    assert 'timing training' in proc.stderr

    out = tmp_path / 'tmp'
    assert (out / 'compare.md').read_text().startswith('| Config')
    assert (out / 'compare.png').stat().st_size > 1000
    records = json.loads((out / 'compare.json').read_text())
    assert [r['config'] for r in records] == [OURS, MMSEG_UNET]
    for rec in records:
        assert FIELDS <= set(rec)
        assert rec['device'] == 'cpu' and rec['shape'] == [64, 64]
        assert rec['batch'] == 1 and rec['train_batch'] == 2
        for key in ('latency_ms', 'train_step_ms'):
            t = rec[key]
            assert 0 < t['min'] <= t['median'] <= t['max']
        assert rec['params_m'] > 1 and rec['gflops'] > 0
        assert rec['throughput_img_s'] == pytest.approx(
            1000.0 / rec['latency_ms']['median'])
        assert rec['peak_train_mem_mb'] > 0
    assert records[0]['model'] == 'EncoderDecoder(ResNet, RefineNetHead)'
    assert records[1]['model'] == 'EncoderDecoder(UNet, FCNHead)'
    assert all(v == 1.0 for v in records[0]['ratios'].values())
    second = records[1]
    assert second['ratios']['params_m'] == pytest.approx(
        second['params_m'] / records[0]['params_m'])
    # UNet-S5 has 29.06M parameters (MMSeg's model zoo).
    assert second['params_m'] == pytest.approx(29.06, abs=0.01)


COMPARE_WRONG_ARGUMENTS = [
    (['missing.py', '--shape', '64', '64'], ['not found', 'missing.py']),
    (['mmseg::unet/nope.py', '--shape', '64', '64'], ['nope.py']),
    ([OURS, '--shape', '64'], ['--shape']),
    ([OURS, '--shape', '64', '0'], ['must be positive']),
    ([OURS, '--shape', 'a', '64'], ['not an integer']),
    ([OURS], ['--shape']),
]


@pytest.mark.parametrize('args,fragments', COMPARE_WRONG_ARGUMENTS)
def test_compare_models_wrong_arguments(tmp_path, args, fragments,
                                        assert_one_line_error,
                                        run_script_main):
    # main() in this process: a subprocess per case imports torch and MMSeg
    proc = run_script_main(COMPARE, *args, cwd=tmp_path)
    assert_one_line_error(proc, *fragments)


def test_compare_models_wrong_arguments_command_line(tmp_path,
                                                     assert_one_line_error):
    """One case as a user runs it: the script's exit status and stderr."""
    args, fragments = COMPARE_WRONG_ARGUMENTS[5]
    proc = run(COMPARE, *args, cwd=tmp_path)
    assert_one_line_error(proc, *fragments)


def test_compare_models_outside_a_clone(tmp_path, assert_one_line_error):
    """Copied out of the repository (as into an installed package's .mim
    folder), compare_models.py says that it needs the benchmark harness
    of a clone, before importing anything heavy."""
    copy = tmp_path / 'tools' / 'analysis' / 'compare_models.py'
    copy.parent.mkdir(parents=True)
    copy.write_text(open(COMPARE).read())
    proc = run(str(copy), OURS, '--shape', '8', '8', cwd=tmp_path)
    assert_one_line_error(proc, 'runs from a clone',
                          'needs benchmarks/harness/')


def write_log(work_dir, timestamp, lines):
    vis = work_dir / timestamp / 'vis_data'
    vis.mkdir(parents=True)
    with open(vis / 'scalars.json', 'w') as f:
        for line in lines:
            f.write(json.dumps(line) + '\n')


def fake_run(scale):
    """Scalar records as MMEngine's LoggerHook writes them."""
    lines = []
    for it in range(10, 101, 10):
        loss = scale / it
        lines.append({'lr': 0.01, 'data_time': 0.01, 'loss': loss,
                      'decode.loss_ce': loss, 'decode.acc_seg': 80.0,
                      'time': 0.2, 'iter': it, 'step': it})
        if it % 50 == 0:
            lines.append({'aAcc': 90.0, 'mIoU': 60.0 + it / 10 * scale,
                          'mAcc': 70.0, 'data_time': 0.001, 'time': 0.02,
                          'step': it})
    return lines


def test_plot_curves(tmp_path):
    for name, scale in (('run_a', 1.0), ('run_b', 2.0)):
        work_dir = tmp_path / name
        # An older run that must be ignored in favour of the latest one.
        write_log(work_dir, '20240101_000000', [{'loss': 9, 'step': 1}])
        write_log(work_dir, '20240102_000000', fake_run(scale))
    out = tmp_path / 'curves.png'
    proc = run(PLOT, 'run_a', 'run_b', '--out', str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 1000
    assert '20240102_000000' in proc.stdout
    assert '20240101_000000' not in proc.stdout

    # One key only, from a run folder.
    proc = run(PLOT, 'run_a/20240102_000000', '--out', 'loss.png', '--keys',
               'loss', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / 'loss.png').is_file()


def test_plot_curves_errors(tmp_path, assert_one_line_error):
    (tmp_path / 'empty_dir').mkdir()
    proc = run(PLOT, 'empty_dir', '--out', 'c.png', cwd=tmp_path)
    assert_one_line_error(proc, 'no MMEngine scalar log', 'empty_dir')
    proc = run(PLOT, 'absent', '--out', 'c.png', cwd=tmp_path)
    assert_one_line_error(proc, 'not found', 'absent')
    write_log(tmp_path / 'w', '20240101_000000', fake_run(1.0))
    proc = run(PLOT, 'w', '--out', 'c.png', '--keys', 'nokey', cwd=tmp_path)
    assert_one_line_error(proc, 'nokey')
    assert not (tmp_path / 'c.png').exists()
