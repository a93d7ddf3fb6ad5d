"""The training-memory estimate on fake tensors (the memory goals of
docs/benchmarks.md): it agrees with what real tensors allocate, and
estimate_memory.py and render.py turn it into records and a section of
docs/benchmarks.md."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.registry import init_default_scope
from torch._subclasses.fake_tensor import FakeTensorMode

import mmseg_refinenet  # noqa: F401
from mmseg_refinenet.models.utils.checks import value_checks_enabled
from harness import measure, memory, segmentors

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ESTIMATE = osp.join(REPO, 'benchmarks', 'estimate_memory.py')
RENDER = osp.join(REPO, 'benchmarks', 'render.py')
R18 = osp.join(REPO, 'configs', 'quickstart',
               'refinenet_r18_1xb8-300it_synthetic-64x64.py')


def run(*args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS='2')
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def allocated_peak_mb(model, shape, batch):
    """Peak bytes held during a real training step, from the profiler's
    allocation events: what is resident before the step (weights, momentum,
    buffers, the batch) plus the largest running sum of allocations minus
    frees within the step."""
    from torch.profiler import ProfilerActivity, profile
    x = measure.make_input(batch, shape, 'cpu')
    samples = measure.make_seg_samples(batch, shape,
                                       segmentors.num_classes(model), 'cpu')
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step():
        loss, _ = model.parse_losses(model(x, samples, mode='loss'))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # creates the momentum buffers
    tensors = list(model.parameters()) * 2 + list(model.buffers()) + [x] + [
        s.gt_sem_seg.data for s in samples
    ]
    resident = sum(t.numel() * t.element_size() for t in tensors)
    with profile(activities=[ProfilerActivity.CPU],
                 profile_memory=True) as prof:
        step()
    events = sorted((e.start_ns(), e.nbytes())
                    for e in prof.profiler.kineto_results.events()
                    if e.name() == '[memory]')
    current = peak = 0
    for _, nbytes in events:
        current += nbytes
        peak = max(peak, current)
    return (resident + peak) / 2**20


def test_estimate_agrees_with_real_allocations():
    init_default_scope('mmseg')
    # at this size the activations are a third of the total; at tiny sizes
    # the CPU kernels' own buffers (which the estimate does not see, nor
    # on a GPU cuDNN's workspaces) weigh more than the activations
    shape, batch = (128, 192), 2
    est = memory.estimate_training_memory(segmentors.load_config(R18), R18,
                                          shape, batch)
    torch.manual_seed(0)
    model = segmentors.build_model(segmentors.load_config(R18), R18,
                                   'cpu').train()
    real = allocated_peak_mb(model, shape, batch)
    assert est['peak_mb'] == pytest.approx(real, rel=0.03)
    kinds = est['by_kind_mb']
    params = sum(p.numel() for p in model.parameters()) * 4 / 2**20
    assert kinds['Parameter'] == pytest.approx(params, rel=1e-3)
    # the momentum buffers exist at the peak: the second step counts
    assert kinds['Optstate'] == pytest.approx(params, rel=1e-3)
    names = [name for name, _ in est['modules_mb']]
    assert names[:2] == ['backbone', 'backbone.conv1']
    assert 'decode_head.blocks.3' in names  # the last block, at 1/4


def test_value_checks_are_skipped_on_fake_tensors():
    assert value_checks_enabled()
    with FakeTensorMode():
        assert not value_checks_enabled()
    assert value_checks_enabled()


def test_estimate_memory_script_and_render(tmp_path, tiny_frrn_config,
                                           run_script_main, head_commit):
    out = tmp_path / 'results' / 'memory-estimate.json'
    # main() in this process (a subprocess would import torch and MMSeg
    # again); without --reference and DeepLabV3: ratios to the first model
    proc = run_script_main(ESTIMATE, '--models', f'RefineNet-R18={R18}',
                           f'FRRN-tiny={tiny_frrn_config}', '--shape', '64',
                           '96', '--no-git-status', '--out', out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = json.loads(out.read_text())
    assert [(r['model'], r['with_cp']) for r in records] == [
        ('RefineNet-R18', False), ('FRRN-tiny', False)]
    for rec in records:
        assert rec['status'] == 'ok' and rec['suite'] == 'memory-estimate'
        assert rec['shape'] == [64, 96] and rec['batch'] == 2
        for key in ('torch', 'command', 'config', 'method',
                    'est_by_kind_mb', 'est_modules_mb'):
            assert rec[key], key
        assert rec['commit'] == head_commit
        assert rec['est_peak_train_mem_mb'] > 0
    assert records[0]['ratio'] == 1.0
    assert records[1]['ratio'] == pytest.approx(
        records[1]['est_peak_train_mem_mb'] /
        records[0]['est_peak_train_mem_mb'], rel=1e-3)
    assert '[2/2] FRRN-tiny 64x96 batch 2' in proc.stderr

    md = tmp_path / 'benchmarks.md'
    render = run(RENDER, str(out), '--out', str(md), cwd=tmp_path)
    assert render.returncode == 0, render.stderr
    text = md.read_text()
    assert '## Estimated peak training memory (any device)' in text
    assert '| RefineNet-R18 | 64x96 | 2 | off |' in text
    # estimates are not measurements: no per-device result tables
    assert '### cpu' not in text

    proc = run_script_main(ESTIMATE, '--models', 'frrn_a', '--reference',
                           'unet_s5')
    assert proc.returncode == 2
    assert proc.stderr == (
        "error: --reference 'unet_s5' is not among --models\n")
