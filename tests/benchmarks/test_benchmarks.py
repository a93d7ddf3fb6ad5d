"""benchmarks/benchmark_models.py and render.py, run as a user would, and the
measurement and time-limit helpers of benchmarks/harness/.

The benchmark runs two small models (the quick-start RefineNet-R18 and a
narrow FRRN A) at 32x64 with one repeat; the test checks that every record
has every field docs/benchmarks.md shows, that what cannot run is recorded with
its reason, and that render.py writes the Markdown and the plot.
"""
import json
import os
import os.path as osp
import subprocess
import sys
import time

import pytest
import torch

from harness import measure, provenance, roofline, segmentors

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BENCH = osp.join(REPO, 'benchmarks', 'benchmark_models.py')
RENDER = osp.join(REPO, 'benchmarks', 'render.py')
R18 = osp.join(REPO, 'configs', 'quickstart',
               'refinenet_r18_1xb8-300it_synthetic-64x64.py')
# the fields of every record, and the provenance
RECORD_FIELDS = {
    'device', 'torch', 'commit', 'model', 'config', 'shape', 'batch',
    'dtype', 'channels_last', 'latency_ms', 'throughput_img_s',
    'train_step_ms', 'peak_train_mem_mb', 'gflops', 'params_m'
}
EXTRA_FIELDS = {
    'status', 'reason', 'latency_ms_min', 'latency_ms_max',
    'train_step_ms_min', 'train_step_ms_max', 'dirty', 'command', 'cpu',
    'threads', 'suite', 'with_cp', 'throughput_batch', 'ratios'
}
TIMEOUT = 300


def run(*args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS='2')
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)


@pytest.fixture(scope='module')
def quick_run(tmp_path_factory, tiny_frrn_config):
    tmp = tmp_path_factory.mktemp('bench')
    out = tmp / 'results' / 'quick.json'
    proc = run(BENCH, '--quick', '--shape', '32', '64', '--models',
               f'RefineNet-R18={R18}', f'FRRN-tiny={tiny_frrn_config}',
               '--reference', 'RefineNet-R18', '--dtypes', 'fp32', 'bf16',
               '--channels-last', 'off', 'on', '--channels-last-models',
               'FRRN-tiny', '--repeats', '1', '--warmup', '0',
               '--with-cp', '--roofline', 'all', '--no-git-status',
               # compiled by dynamo and AOT autograd, without inductor's
               # code generation (minutes on 2 cores)
               '--compile', 'default', '--compile-models', 'FRRN-tiny',
               '--compile-backend', 'aot_eager',
               '--out', str(out), cwd=tmp)
    return tmp, out, proc


def test_benchmark_quick_records(quick_run):
    tmp, out, proc = quick_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == str(out)
    records = json.loads(out.read_text())
    # main: R18 fp32/bf16 NCHW, FRRN fp32/bf16 x NCHW/channels_last;
    # with_cp: 2 models x 2 dtypes x off/on; compiled: FRRN as in main
    assert len(records) == 2 + 4 + 8 + 4
    keys = set(records[0])
    for rec in records:
        assert set(rec) == keys
        assert RECORD_FIELDS | EXTRA_FIELDS <= keys
        assert rec['device'] == 'cpu' and rec['torch'] == torch.__version__
        assert rec['shape'] == [32, 64] and rec['batch'] == 1
        assert rec['status'] in ('ok', 'partial', 'skipped')
        assert 'benchmark_models.py --quick' in rec['command']
        assert rec['threads'] >= 1
        if rec['status'] == 'skipped':
            assert rec['reason']
    main = [r for r in records if r['suite'] == 'main']
    fp32 = [r for r in main if r['dtype'] == 'fp32']
    assert {(r['model'], r['channels_last']) for r in fp32} == {
        ('RefineNet-R18', False), ('FRRN-tiny', False), ('FRRN-tiny', True)
    }
    for rec in fp32:
        assert rec['status'] == 'ok', rec['reason']
        assert 0 < rec['latency_ms_min'] <= rec['latency_ms'] <= \
            rec['latency_ms_max']
        assert rec['throughput_img_s'] > 0 and rec['throughput_batch'] >= 1
        assert rec['train_step_ms'] > 0 and rec['peak_train_mem_mb'] > 0
        assert rec['gflops'] > 0 and rec['params_m'] > 0
        assert rec['fwd_flops'] > 0 and rec['fwd_bytes'] > 0
        assert rec['achieved_tflops'] > 0
        # ratios where the reference was measured alike (not channels_last)
        assert (rec['ratios'] is None) == rec['channels_last']
    r18 = next(r for r in fp32 if r['model'] == 'RefineNet-R18')
    assert all(v == pytest.approx(1.0) for v in r18['ratios'].values())
    assert r18['model_arch'] == 'EncoderDecoder(ResNet, RefineNetHead)'
    # bf16 on a CPU without native bf16 kernels is skipped with the reason;
    # where it runs, it is measured like fp32
    for rec in (r for r in main if r['dtype'] == 'bf16'):
        if rec['status'] == 'skipped':
            assert 'bf16' in rec['reason']
        else:
            assert rec['latency_ms'] > 0
    cp = [r for r in records if r['suite'] == 'with_cp']
    assert {r['with_cp'] for r in cp} == {False, True}
    for rec in cp:
        assert rec['latency_ms'] is None
        if rec['dtype'] == 'fp32':
            assert rec['peak_train_mem_mb'] > 0
    compiled = [r for r in records if r['suite'] == 'compiled-default']
    assert {(r['model'], r['dtype'], r['channels_last'], r['compile'])
            for r in compiled} == {
                ('FRRN-tiny', d, cl, 'default')
                for d in ('fp32', 'bf16') for cl in (False, True)}
    for rec in compiled:
        assert rec['warmup'] == 3  # compile, record, replay: untimed
        assert rec['train_step_ms'] is None and rec['throughput_img_s'] \
            is None
        if rec['dtype'] == 'fp32':
            assert rec['status'] == 'ok', rec['reason']
            assert rec['latency_ms'] > 0 and rec['achieved_tflops'] > 0
            assert rec['eager_latency_ms'] > 0
            assert rec['fwd_flops'] == next(
                r['fwd_flops'] for r in fp32 if r['model'] == 'FRRN-tiny')
    assert all(r['compile'] is None for r in records
               if r['suite'] != 'compiled-default')
    # progress while running
    assert '[1/5]' in proc.stderr and 'training steps' in proc.stderr
    assert 'compiling (aot_eager, default)' in proc.stderr


def test_render(quick_run, tmp_path):
    _, out, proc = quick_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    md = tmp_path / 'docs' / 'benchmarks.md'
    # a hand-written page: the text outside the markers stays
    md.parent.mkdir()
    md.write_text('# My header\n\n<!-- BEGIN GENERATED -->\nold\n'
                  '<!-- END GENERATED -->\n\nMy footer\n')
    render = run(RENDER, str(out), '--out', str(md), '--reference',
                 'RefineNet-R18', cwd=tmp_path)
    assert render.returncode == 0, render.stderr
    text = md.read_text()
    assert text.startswith('# My header\n')
    assert text.rstrip().endswith('My footer')
    assert 'old' not in text
    for fragment in ('RefineNet-R18', 'FRRN-tiny', '## Goals',
                     'not measured: needs a GPU', 'with_cp', '(x1.00)',
                     '## Roofline', 'benchmarks_cpu.png',
                     '## Compiled forward', 'FRRN-tiny (torch.compile '
                     'default)', 'compiled / eager latency: FRRN-tiny '):
        assert fragment in text, fragment
    assert (tmp_path / 'docs' / 'benchmarks_cpu.png').stat().st_size > 1000

    # a new page starts from the template
    new = tmp_path / 'new' / 'benchmarks.md'
    render = run(RENDER, str(out), '--out', str(new), cwd=tmp_path)
    assert render.returncode == 0, render.stderr
    assert '## Reproducing' in new.read_text()


WRONG_ARGUMENTS = [
    (['--models', 'nope'], 'nope'),
    (['--models', 'missing.py'], 'missing.py'),
    (['--shape', '64'], '--shape'),
    (['--dtypes', 'fp8'], 'fp8'),
    (['--reference', 'frrn_a', '--channels-last-models', 'unet_s5',
      '--models', 'frrn_a'], 'unet_s5'),
    (['--with-cp', '--no-train'], '--no-train'),
    (['--compile', 'fastest'], 'fastest'),
    (['--compile-dtypes', 'bf16'], 'need --compile'),
    (['--only-compiled'], 'need --compile'),
    (['--reference', 'frrn_a', '--compile', 'default', '--compile-models',
      'unet_s5', '--models', 'frrn_a'], 'unet_s5'),
]


def assert_refused(proc, fragment, tmp_path):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), proc.stderr
    assert fragment in lines[0]
    assert not (tmp_path / 'work_dirs').exists()


@pytest.mark.parametrize('args,fragment', WRONG_ARGUMENTS)
def test_benchmark_wrong_arguments(tmp_path, args, fragment,
                                   run_script_main):
    # main() in this process: a subprocess per case imports torch and MMSeg
    proc = run_script_main(BENCH, *args, '--no-git-status', cwd=tmp_path)
    assert_refused(proc, fragment, tmp_path)


def test_benchmark_wrong_arguments_command_line(tmp_path):
    """One case as a user runs it: the script's exit status and stderr."""
    args, fragment = WRONG_ARGUMENTS[0]
    proc = run(BENCH, *args, '--no-git-status', cwd=tmp_path)
    assert_refused(proc, fragment, tmp_path)


def test_timed_stops_at_the_deadline():
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.05)

    times = measure.timed(slow, 0, 100, 'cpu', deadline=time.monotonic() + 0.2)
    assert 1 <= len(times) < 10
    # at least one timed run, even past the deadline
    assert len(measure.timed(slow, 1, 5, 'cpu',
                             deadline=time.monotonic() - 1)) == 1


def test_time_limit_interrupts():
    with pytest.raises(measure.BudgetExceeded):
        with measure.time_limit(0.2):
            for _ in range(1000):  # 10 s of work at most
                time.sleep(0.01)
            pytest.fail('time_limit(0.2) let 10 s of work run to its end')
    with measure.time_limit(5):  # no alarm left behind
        pass
    time.sleep(0.05)


class _Tiny(torch.nn.Module):

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.with_cp = False

    def forward(self, x, mode='tensor'):
        return self.conv(x)


def test_best_throughput_and_helpers():
    model = _Tiny()
    result = measure.best_throughput(model, (16, 16), [1, 2, 4],
                                     0,
                                     2,
                                     'cpu',
                                     channels_last=True)
    assert result['batch'] in (1, 2, 4)
    assert result['throughput_img_s'] == max(result['by_batch'].values())
    assert segmentors.set_with_cp(model, True) == 1 and model.with_cp is True
    cost = roofline.forward_cost(model, (16, 16), 'cpu')
    # 3x3 conv, 3 -> 4 channels, 16x16: 2 * 4 * 3 * 9 * 256 FLOPs
    assert cost['flops'] == 2 * 4 * 3 * 9 * 256
    assert cost['bytes'] > (3 + 4) * 256 * 4
    assert measure.is_oom(
        RuntimeError("DefaultCPUAllocator: can't allocate "
                     'memory: you tried to allocate 1 bytes'))
    assert not measure.is_oom(RuntimeError('shape mismatch'))
    assert roofline.device_peaks('NVIDIA H100 80GB HBM3',
                                 'bf16') == (989.4, 3350.0)
    assert roofline.device_peaks('cpu', 'fp32') is None


def test_git_commit_is_the_checked_out_commit(head_commit, tmp_path,
                                              monkeypatch):
    assert provenance.git_commit(REPO) == head_commit
    # a copy of the tree without .git: the commit its maker names, or None
    monkeypatch.delenv('MMSEG_RN_COMMIT', raising=False)
    assert provenance.git_commit(str(tmp_path)) is None
    monkeypatch.setenv('MMSEG_RN_COMMIT', 'a' * 40)
    assert provenance.git_commit(str(tmp_path)) == 'a' * 40


def test_measure_with_cp_restores_the_flags(tiny_frrn_config):
    from mmengine.config import Config
    from mmseg.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(tiny_frrn_config)
    model = segmentors.build_model(cfg, 'tiny FRRN', 'cpu')
    results = measure.measure_with_cp(model, (32, 32), 1, 0, 1, 'cpu')
    assert set(results) == {False, True}
    for times, peak, method in results.values():
        assert len(times) == 1 and times[0] > 0 and 'RSS' in method
    assert not any(m.with_cp for m in model.modules()
                   if hasattr(m, 'with_cp'))


def test_measured_training_steps_leave_the_weights(tiny_frrn_config):
    """The measured SGD steps run in full (momentum buffers filled) with
    learning rate 0: repeated steps on one batch cannot diverge, whatever
    the untrained weights (RefineNet-R101's reached NaN at lr 1e-3)."""
    from mmengine.config import Config
    from mmseg.utils import register_all_modules
    register_all_modules()
    model = segmentors.build_model(Config.fromfile(tiny_frrn_config),
                                   'tiny FRRN', 'cpu')
    before = [p.detach().clone() for p in model.parameters()]
    times, _, _ = measure.measure_training(model, (32, 32), 2, 1, 3, 'cpu')
    assert len(times) == 3
    for p, p0 in zip(model.parameters(), before):
        torch.testing.assert_close(p.detach(), p0, rtol=0, atol=0)
    # the optimiser is a real one: a step with gradients fills its state
    params = [torch.nn.Parameter(torch.ones(3))]
    optimizer = measure.step_optimizer(params)
    params[0].grad = torch.ones(3)
    optimizer.step()
    assert 'momentum_buffer' in optimizer.state[params[0]]
    assert torch.equal(params[0].detach(), torch.ones(3))


@pytest.mark.slow
def test_camvid_activation_memory_estimate(tmp_path):
    """The five CamVid models build in train mode and report their saved
    activations (small input: the figure scales with the pixels). Slow
    (about 20 s): it says whether the CamVid experiment fits a GPU; run by
    CI."""
    proc = run(osp.join(REPO, 'benchmarks', 'camvid_activation_memory.py'),
               '--shape', '64', '96', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {line.rsplit(None, 2)[0]: [float(v) for v in
                                      line.rsplit(None, 2)[1:]]
            for line in proc.stdout.splitlines()[1:-1]}
    assert len(rows) == 5 and 'FRRN A' in rows
    assert all(params > 1 and gib > 0 for params, gib in rows.values())
    total = float(proc.stdout.splitlines()[-1].split()[-1])
    assert total == pytest.approx(sum(g for _, g in rows.values()), abs=0.3)
    proc = run(osp.join(REPO, 'benchmarks', 'camvid_activation_memory.py'),
               '--batch', '1', cwd=tmp_path)
    assert proc.returncode == 2 and '--batch must be >= 2' in proc.stderr


def test_git_dirty_ignores_results_and_docs(tmp_path):
    """Writing results (or the pages rendered from them) does not mark the
    next run dirty; a change to anything else does."""
    import subprocess

    def git(*args):
        subprocess.run(['git', *args], cwd=tmp_path, check=True,
                       capture_output=True)

    files = ['setup.py', 'docs/benchmarks.md', 'benchmarks/results/r.json',
             'benchmarks/render.py']
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text('a\n')
    git('init', '-q')
    git('add', '.')
    git('-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '-m',
        'c')
    assert provenance.git_dirty(str(tmp_path)) is False
    for name in files[1:3]:
        (tmp_path / name).write_text('b\n')
    assert provenance.git_dirty(str(tmp_path)) is False
    (tmp_path / 'benchmarks/render.py').write_text('b\n')
    assert provenance.git_dirty(str(tmp_path)) is True


def test_compiled_inference_is_compiled_or_refused():
    model = _Tiny()
    times = measure.measure_inference(model, (16, 16),
                                      1,
                                      3,
                                      2,
                                      'cpu',
                                      compile_mode='default',
                                      compile_backend='aot_eager')
    assert len(times) == 2 and min(times) > 0

    class Uncompilable(_Tiny):

        @torch._dynamo.disable
        def forward(self, x, mode='tensor'):
            return super().forward(x, mode)

    # dynamo skips the forward: eager times must not pass for compiled ones
    with pytest.raises(segmentors.BenchmarkError, match='compiled no graph'):
        measure.measure_inference(Uncompilable(), (16, 16),
                                  1,
                                  1,
                                  1,
                                  'cpu',
                                  compile_mode='default',
                                  compile_backend='aot_eager')


def test_planned_groups(load_script):
    bench = load_script(BENCH)
    args = bench.parse_args(['--models', 'frrn_a', 'frrn_b',
                             '--frrn-paper-sizes', '--no-train'])
    assert {g['suite'] for g in bench.plan(args)} == {'main', 'frrn-paper'}
    args = bench.parse_args(['--models', 'frrn_b', '--frrn-paper-sizes'])
    assert [g['shape'] for g in bench.plan(args)
            if g['suite'] == 'with_cp'] == [[512, 1024], [1024, 2048]]
    args = bench.parse_args(['--models', 'frrn_a', 'unet_s5',
                             '--frrn-paper-sizes', '--compile', 'default',
                             'reduce-overhead', '--only-compiled',
                             '--compile-dtypes', 'bf16'])
    assert [(g['suite'], g['model']['key'], g['shape'], g['variants'])
            for g in bench.plan(args)] == [
                (f'compiled-{mode}', key, shape,
                 [('bf16', False, None), ('bf16', True, None)])
                for mode in ('default', 'reduce-overhead')
                for key, shape in (('frrn_a', [256, 512]),
                                   ('unet_s5', [512, 1024]))]


def test_crp_recompute_cost_times_both_settings(tmp_path):
    proc = run(osp.join(REPO, 'benchmarks', 'crp_recompute_cost.py'),
               '--channels', '4', '--shape', '1', '8', '8', '--repeats', '2',
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith('CRP 4 channels, input 1x4x8x8')
    assert '2 runs each' in lines[0]
    assert [line.split(':')[0] for line in lines[1:]] == [
        'recompute_pooling=False', 'recompute_pooling=True ']


PAIRED = osp.join(REPO, 'benchmarks', 'paired_latency.py')


def test_paired_stats_cancel_a_drift(load_script):
    """The machine slows down 1.5x over the rounds and a model always takes
    0.8x the reference's time of the same round: the paired ratio is 0.8
    in every round, though the model's later times exceed the reference's
    earlier ones."""
    script = load_script(PAIRED)
    drift = [1.0, 1.1, 1.25, 1.4, 1.5]
    times = {'ref': [100 * d for d in drift],
             'model': [80 * d for d in drift]}
    stats = script.paired_stats(times, 'ref')
    assert stats['ref']['ratio'] == 1.0
    model = stats['model']
    assert model['ratio'] == pytest.approx(0.8)
    assert model['ratio_q1'] == pytest.approx(0.8)
    assert model['ratio_q3'] == pytest.approx(0.8)
    assert model['latency_ms'] == pytest.approx(100.0)  # 80 x 1.25
    assert model['rounds'] == 5
    with pytest.raises(ValueError, match='2 rounds'):
        script.paired_stats({'ref': [1, 2, 3], 'model': [1, 2]}, 'ref')
    # every model at every place of a round once over n rounds
    orders = [script.round_order(3, r) for r in range(3)]
    assert orders == [[0, 1, 2], [1, 2, 0], [2, 0, 1]]


def test_paired_latency_records_and_render(tmp_path, tiny_frrn_config,
                                           run_script_main, render_page):
    out = tmp_path / 'paired.json'
    proc = run_script_main(PAIRED, '--models', f'RefineNet-R18={R18}',
                           f'FRRN-tiny={tiny_frrn_config}', '--shape', '32',
                           '64', '--rounds', '3', '--warmup', '0',
                           '--no-git-status', '--out', out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = json.loads(out.read_text())
    assert [r['model'] for r in records] == ['RefineNet-R18', 'FRRN-tiny']
    for rec in records:
        assert rec['suite'] == 'paired' and rec['status'] == 'ok'
        assert rec['reference'] == 'RefineNet-R18' and rec['rounds'] == 3
        assert rec['shape'] == [32, 64] and rec['batch'] == 1
        assert rec['ratio_min'] <= rec['ratio_q1'] <= rec['ratio'] <= \
            rec['ratio_q3'] <= rec['ratio_max']
        assert rec['latency_ms_min'] <= rec['latency_ms'] > 0
        assert rec['torch'] and rec['command']
    assert records[0]['ratio'] == 1.0
    assert 'round 3: FRRN-tiny x' in proc.stderr

    text = render_page(out)
    assert '## Paired latency' in text
    assert '| cpu | 32x64 | 1 | fp32 | NCHW | FRRN-tiny |' in text


@pytest.mark.parametrize('args,fragment', [
    (['--models', 'frrn_a', 'frrn_b', '--reference', 'unet_s5'],
     "--reference 'unet_s5'"),
    (['--models', 'frrn_a', 'frrn_a'], 'named twice'),
    (['--warmup', '-1'], '--warmup'),
    (['--dtype', 'fp8'], 'fp8'),
])
def test_paired_latency_wrong_arguments(tmp_path, args, fragment,
                                        run_script_main):
    proc = run_script_main(PAIRED, *args, '--out', tmp_path / 'p.json')
    assert_refused(proc, fragment, tmp_path)
    assert not (tmp_path / 'p.json').exists()


def test_paired_latency_time_limit(tmp_path, tiny_frrn_config):
    """The script as a process; the time limit stops it after the first
    round, and the records say how many rounds there were."""
    out = tmp_path / 'paired.json'
    proc = run(PAIRED, '--models', f'a={tiny_frrn_config}',
               f'b={tiny_frrn_config}', '--shape', '32', '32', '--rounds',
               '50', '--warmup', '0', '--time-limit', '0.001',
               '--no-git-status', '--out', str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'time limit: 1 of 50 rounds' in proc.stderr
    assert [r['rounds'] for r in json.loads(out.read_text())] == [1, 1]


def test_hard_stop_never_runs_far_past_the_time_limit(monkeypatch):
    """What a measurement cannot stop itself (a torch.compile) is cut at
    twice its budget, but never more than 10 s past --time-limit: a run
    under a job's time limit must end before the job is killed."""
    import importlib.util
    import types
    spec = importlib.util.spec_from_file_location(
        'benchmark_models_script',
        osp.join(REPO, 'benchmarks', 'benchmark_models.py'))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    stops = []
    real = measure.time_limit

    def spy(seconds):
        stops.append(seconds)
        return real(seconds)

    monkeypatch.setattr(measure, 'time_limit', spy)
    args = types.SimpleNamespace(time_limit=3.0, budget=30.0)
    runner = script.Runner(args, env={}, results=None, device='cpu')
    record = dict(errors={})
    # the time left, fixed: the stops are then exact, whatever the load
    left = [3.0]
    monkeypatch.setattr(runner, 'time_left', lambda: left[0])
    assert runner.measure('x', lambda deadline: deadline, record) > 0
    # 3 s left: budget 3 s, hard stop 3 + 10 s (it was 2 * 3 + 10)
    assert stops == [3.0 + 10]
    # far from the limit: twice the budget, as before
    left[0] = 1000.0
    runner.measure('y', lambda deadline: deadline, record, budget=20.0)
    assert stops == [3.0 + 10, 2 * 20.0 + 10]


# --------------------------------------------------------------------------
# the CUDA path, as far as the CPU can show it (each guards a fault that
# a GPU run would show)
# --------------------------------------------------------------------------
def test_device_peaks_take_the_longest_matching_name():
    # 'NVIDIA H200 NVL' also contains 'H200' (the SXM part: 989 TFLOP/s)
    assert roofline.device_peaks('NVIDIA H200 NVL', 'bf16') == (835.0, 4800.0)
    assert roofline.device_peaks('NVIDIA H200', 'bf16') == (989.4, 4800.0)
    assert roofline.device_peaks('NVIDIA H100 NVL', 'fp32') == (417.5, 3900.0)


def test_timed_warmup_can_be_finished_and_followed():
    events = []

    def run():
        events.append('run')

    # a deadline already past: the warm-up stops after its first run...
    measure.timed(run, 3, 5, 'cpu', deadline=time.monotonic() - 1)
    assert events == ['run'] * 2
    # ...but compiled code finishes it: its first runs compile and record
    events.clear()
    times = measure.timed(run,
                          3,
                          5,
                          'cpu',
                          deadline=time.monotonic() - 1,
                          finish_warmup=True,
                          after_warmup=lambda: events.append('reset'))
    assert events == ['run'] * 3 + ['reset', 'run'] and len(times) == 1


def test_compiled_inference_finishes_its_warmup(monkeypatch):
    """A compile that ends past the deadline must not leave its first
    (CUDA-graph recording) run to be timed as the compiled latency."""
    seen = []
    real = measure.timed

    def spy(*args, **kwargs):
        seen.append(kwargs.get('finish_warmup', False))
        return real(*args, **kwargs)

    monkeypatch.setattr(measure, 'timed', spy)
    for mode in ('default', None):
        times = measure.measure_inference(
            _Tiny(), (16, 16), 1, 3, 2, 'cpu',
            deadline=time.monotonic() - 1, compile_mode=mode,
            compile_backend='aot_eager')
        assert len(times) == 1
    assert seen == [True, False]


def test_best_throughput_keeps_what_it_measured(monkeypatch):
    def fake(model, shape, batch, *args, **kwargs):
        if batch >= 4:
            raise RuntimeError('index out of range for int32')
        return [10.0]  # ms at every batch: batch 2 is the best

    monkeypatch.setattr(measure, 'measure_inference', fake)
    result = measure.best_throughput(None, (8, 8), [1, 2, 4, 8], 0, 1, 'cpu')
    assert result['batch'] == 2 and set(result['by_batch']) == {1, 2}
    assert result['stopped'].startswith('batch 4: RuntimeError: index')
    # an error at the first batch leaves nothing to keep: it is raised
    with pytest.raises(RuntimeError, match='int32'):
        measure.best_throughput(None, (8, 8), [4, 8], 0, 1, 'cpu')


def test_snapshot_state_is_a_host_copy():
    model = _Tiny()
    state = segmentors.snapshot_state(model)
    assert all(t.device.type == 'cpu' for t in state.values())
    with torch.no_grad():
        model.conv.weight.add_(1)
    assert not torch.equal(state['conv.weight'], model.conv.weight)
    model.load_state_dict(state)
    assert torch.equal(state['conv.weight'], model.conv.weight)


def test_build_model_switches_value_checks_off(tiny_frrn_config):
    from mmengine.config import Config
    from mmseg.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(tiny_frrn_config)

    def flags(model):
        return [m.check_finite for m in model.modules()
                if hasattr(m, 'check_finite')]

    on = flags(
        segmentors.build_model(cfg, 'tiny FRRN', 'cpu', value_checks=True))
    off = flags(segmentors.build_model(cfg, 'tiny FRRN', 'cpu'))
    assert len(on) >= 2 and all(on)  # the backbone and the head
    assert len(off) == len(on) and not any(off)


def test_plan_measures_the_reference_first(load_script):
    bench = load_script(BENCH)
    args = bench.parse_args(['--models', 'frrn_a', 'unet_s5',
                             'deeplabv3_r101', 'frrn_b'])
    assert [g['model']['key'] for g in bench.plan(args)] == [
        'deeplabv3_r101', 'frrn_a', 'unet_s5', 'frrn_b']


def test_no_measurement_starts_past_the_time_limit(load_script):
    import types
    script = load_script(BENCH)
    args = types.SimpleNamespace(time_limit=-1.0, budget=30.0)
    runner = script.Runner(args, env={}, results=None, device='cpu')
    record = dict(errors={})
    called = []
    assert runner.measure('train', called.append, record) is None
    assert not called
    assert 'time limit' in record['errors']['train']


def test_goals_on_an_h200_and_unmeasured_runs(load_script):
    render = load_script(RENDER)

    def rec(model, shape, **kw):
        base = dict(model=model, suite='main', shape=list(shape),
                    dtype='bf16', channels_last=False, with_cp=None,
                    status='ok', reason=None, device='NVIDIA H200',
                    latency_ms=None, train_batch=2)
        base.update(kw)
        return base

    records = [
        rec('FRRN A', (256, 512), suite='frrn-paper', latency_ms=4.2),
        rec('FRRN B', (512, 1024), latency_ms=16.0),
        rec('FRRN B', (1024, 2048), suite='with_cp', with_cp=True,
            status='skipped',
            reason='run time limit (--time-limit) reached'),
    ]
    rows = {line.split(' | ')[0].lstrip('| '): line
            for line in render.goals_table(records)[2:]}
    frrn_a = rows['FRRN A forward, 256x512, batch 1, H100-class bf16']
    assert '4.20 ms' in frrn_a and 'NVIDIA H200' in frrn_a
    assert '| met |' in frrn_a
    assert '| missed |' in rows[
        'FRRN B forward, 512x1024, batch 1, H100-class bf16']
    full = rows['FRRN B trains at 1024x2048, batch 1, with with_cp']
    assert 'not measured: run time limit' in full
    assert '| not measured |' in full and 'missed' not in full
    # a run out of memory is a measurement: the goal is missed
    records[2].update(reason='train: out of memory: CUDA out of memory')
    full = {line.split(' | ')[0].lstrip('| '): line
            for line in render.goals_table(records)[2:]}[
                'FRRN B trains at 1024x2048, batch 1, with with_cp']
    assert '| missed |' in full


def test_settle_grad_scaler_until_a_step_is_not_skipped():
    """fp16 training steps are timed once the GradScaler stops skipping
    them (a skipped step makes no optimizer step and no momentum buffer)."""
    model = torch.nn.Linear(4, 4)
    optimizer = measure.step_optimizer(model.parameters())
    # 2**40 overflows fp16 gradients: the first steps are skipped
    scaler = torch.amp.GradScaler('cpu', init_scale=2.0**40)
    x = torch.randn(2, 4)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast('cpu', dtype=torch.float16):
            loss = model(x).float().pow(2).mean()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    count = measure.settle_grad_scaler(step, scaler, max_steps=64)
    assert count is not None and count > 1
    assert scaler.get_scale() < 2.0**40
    assert optimizer.state[model.weight]  # the last step was made
    # a scaler that never settles within max_steps: None
    scaler = torch.amp.GradScaler('cpu', init_scale=2.0**120)
    assert measure.settle_grad_scaler(step, scaler, max_steps=3) is None


def test_fp16_training_settles_the_scaler_first(tiny_frrn_config,
                                                monkeypatch):
    from mmengine.config import Config
    from mmseg.utils import register_all_modules
    register_all_modules()
    model = segmentors.build_model(Config.fromfile(tiny_frrn_config),
                                   'tiny FRRN', 'cpu')
    settled = []
    real = measure.settle_grad_scaler

    def spy(step, scaler, **kwargs):
        settled.append(real(step, scaler, **kwargs))
        return settled[-1]

    monkeypatch.setattr(measure, 'settle_grad_scaler', spy)
    times, _, _ = measure.measure_training(model, (32, 32),
                                           2,
                                           0,
                                           1,
                                           'cpu',
                                           dtype='fp16')
    assert len(times) == 1 and len(settled) == 1
    measure.measure_training(model, (32, 32), 2, 0, 1, 'cpu', dtype='bf16')
    assert len(settled) == 1  # no scaler without fp16
