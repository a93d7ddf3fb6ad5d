"""tools/train.py, tools/test.py and tools/dist_*.sh, run as a user would.

Every test starts the real scripts in a subprocess (except a refusal that
comes before any work: that one runs the script's ``main`` in the test
process), from a current directory
outside the repository, on a small generated dataset (8 training and 4
validation images of 64x64) with the quick-start config cut down to a few
iterations at batch size 2. The distributed tests start 2 processes with
``torchrun`` on the CPU (gloo), on one node or as two nodes of one process
each, the path that :mod:`mmseg_refinenet.utils.dist` makes work with
MMEngine 0.10.7.
"""
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from mmengine.config import Config

from mmseg_refinenet.utils import load_local_checkpoint, setup_cpu_distributed
from mmseg_refinenet.utils import dist as dist_utils

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TRAIN = osp.join(REPO, 'tools', 'train.py')
TEST = osp.join(REPO, 'tools', 'test.py')
DIST_TRAIN = osp.join(REPO, 'tools', 'dist_train.sh')
DIST_TEST = osp.join(REPO, 'tools', 'dist_test.sh')
CONFIG = osp.join(REPO, 'configs', 'quickstart',
                  'refinenet_r18_1xb8-300it_synthetic-64x64.py')
CONFIG_STEM = osp.splitext(osp.basename(CONFIG))[0]
TIMEOUT = 300

# A hook, imported through the config's custom_imports, that saves the
# parameters each rank holds after training. The module also reports, when
# the process exits, whether the tool left a process group for the
# interpreter's shutdown to destroy (see mmseg_refinenet.utils.destroy_dist).
RANK_DUMP_HOOK = '''
import atexit
import os
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RankParamsDumpHook(Hook):

    def after_train(self, runner):
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        params = {k: v.detach().clone() for k, v in model.named_parameters()}
        torch.save(params, osp.join(runner.work_dir, f'rank{get_rank()}.pth'))


@atexit.register
def _report_process_group():
    print(f"rank {os.environ.get('RANK')}: process group at exit: "
          f'{torch.distributed.is_initialized()}', flush=True)
'''

TTA_CONFIG = '''
_base_ = [{base!r}]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='TestTimeAug',
         transforms=[
             [dict(type='Resize', scale_factor=r, keep_ratio=True)
              for r in (1.0, 1.5)],
             [dict(type='RandomFlip', prob=0., direction='horizontal'),
              dict(type='RandomFlip', prob=1., direction='horizontal')],
             [dict(type='LoadAnnotations')],
             [dict(type='PackSegInputs')]])
]
'''

DIST_CONFIG = '''
_base_ = [{base!r}]
custom_imports = dict(imports=['mmseg_refinenet', 'rank_dump_hook'],
                      allow_failed_imports=False)
custom_hooks = [dict(type='RankParamsDumpHook')]
# SyncBN, as in the GPU configs: reverted to BN on the CPU
model = dict(backbone=dict(norm_cfg=dict(type='SyncBN', requires_grad=True)))
'''

DIST_TEST_CONFIG = '''
_base_ = [{base!r}]
custom_imports = dict(imports=['mmseg_refinenet', 'rank_dump_hook'],
                      allow_failed_imports=False)
'''


def run(cmd, cwd, env=None, check=True):
    """Run ``cmd`` like a user would; fail with its output if it fails."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT)
    if check and proc.returncode != 0:
        pytest.fail(f'{cmd} exited with {proc.returncode}\n'
                    f'stdout:\n{proc.stdout[-4000:]}\n'
                    f'stderr:\n{proc.stderr[-4000:]}')
    return proc


def miou(text):
    """The last mIoU that the runner logged."""
    values = re.findall(r'mIoU: (\d+\.\d+)', text)
    assert values, f'no mIoU in the output:\n{text[-3000:]}'
    return float(values[-1])


def ckpt_iter(path):
    return load_local_checkpoint(path)['meta']['iter']


@pytest.fixture(scope='module')
def data_root(synthetic_data_root):
    return synthetic_data_root


@pytest.fixture(scope='module')
def data_options(short_schedule_options):
    """``(data_root, max_iters, ckpt_interval) -> ['--cfg-options', ...]``
    for the generated data and a short schedule."""

    def options(data_root, max_iters, ckpt_interval):
        return [
            '--cfg-options',
            *short_schedule_options(data_root, max_iters, ckpt_interval)
        ]

    return options


@pytest.fixture(scope='module')
def trained(tmp_path_factory, data_root, data_options):
    """Train 4 iterations, then resume to 6: the work dir and outputs."""
    cwd = str(tmp_path_factory.mktemp('cwd'))
    # relative config path from outside the repository, default work dir
    first = run([
        sys.executable, TRAIN,
        osp.relpath(CONFIG, cwd), *data_options(data_root, 4, 2)
    ], cwd)
    work_dir = osp.join(cwd, 'work_dirs', CONFIG_STEM)
    resumed = run([
        sys.executable, TRAIN, CONFIG, '--work-dir', work_dir, '--resume',
        *data_options(data_root, 6, 2)
    ], cwd)
    return dict(cwd=cwd, work_dir=work_dir, first=first, resumed=resumed)


def test_train_writes_checkpoints_and_log(trained):
    work_dir = trained['work_dir']
    names = os.listdir(work_dir)
    for name in ('iter_2.pth', 'iter_4.pth', 'last_checkpoint',
                 f'{CONFIG_STEM}.py'):
        assert name in names
    logs = [
        osp.join(work_dir, d, f'{d}.log') for d in names
        if osp.isdir(osp.join(work_dir, d))
    ]
    assert len(logs) == 2 and all(osp.isfile(log) for log in logs)
    assert 'Iter(train) [4/4]' in trained['first'].stdout
    assert ckpt_iter(osp.join(work_dir, 'iter_4.pth')) == 4


def test_resume_continues_to_new_max_iters(trained):
    work_dir = trained['work_dir']
    out = trained['resumed'].stdout
    # auto-resume found iter_4.pth; loading it (optimizer state, message
    # hub, numpy objects) needs the plugin's loader under torch >= 2.6
    assert re.search(r'Auto resumed from the latest checkpoint .*iter_4\.pth',
                     out)
    assert 'resumed epoch: 0, iter: 4' in out
    assert 'Iter(train) [5/6]' in out and 'Iter(train) [6/6]' in out
    assert 'Iter(train) [1/6]' not in out
    ckpt = load_local_checkpoint(osp.join(work_dir, 'iter_6.pth'))
    assert ckpt['meta']['iter'] == 6
    assert ckpt['message_hub']['runtime_info']['max_iters'] == 6
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        assert f.read().strip().endswith('iter_6.pth')


def test_resume_from_path(trained, data_root, data_options, tmp_path):
    work_dir = str(tmp_path / 'work')
    proc = run([
        sys.executable, TRAIN, CONFIG, '--work-dir', work_dir,
        '--resume-from',
        osp.join(trained['work_dir'], 'iter_4.pth'),
        *data_options(data_root, 5, 5), 'val_dataloader=None',
        'val_cfg=None', 'val_evaluator=None'
    ], str(tmp_path))
    assert 'resumed epoch: 0, iter: 4' in proc.stdout
    assert ckpt_iter(osp.join(work_dir, 'iter_5.pth')) == 5


def test_test_reports_miou_and_writes_predictions(trained, data_root,
                                                  tmp_path):
    out_dir = tmp_path / 'preds'
    proc = run([
        sys.executable, TEST, CONFIG,
        osp.join(trained['work_dir'], 'iter_6.pth'), '--work-dir',
        str(tmp_path / 'test_work'), '--out',
        str(out_dir), '--cfg-options',
        f'test_dataloader.dataset.data_root={data_root}'
    ], str(tmp_path))
    value = miou(proc.stdout)
    assert 0 <= value <= 100
    assert 'Iter(test) [4/4]' in proc.stdout
    assert sorted(os.listdir(out_dir)) == [f'{i:04d}.png' for i in range(4)]
    # the same mIoU as the validation at the end of training
    assert value == miou(trained['resumed'].stdout)


def test_test_tta(trained, data_root, tmp_path):
    config = tmp_path / 'tta_config.py'
    config.write_text(TTA_CONFIG.format(base=CONFIG))
    proc = run([
        sys.executable, TEST,
        str(config),
        osp.join(trained['work_dir'], 'iter_6.pth'), '--tta', '--work-dir',
        str(tmp_path / 'tta_work'), '--cfg-options',
        f'test_dataloader.dataset.data_root={data_root}',
        'test_dataloader.dataset.indices=2'
    ], str(tmp_path))
    assert 'SegTTAModel' in proc.stdout
    assert 'Iter(test) [2/2]' in proc.stdout
    assert 0 <= miou(proc.stdout) <= 100


def test_tta_without_tta_pipeline_is_a_clear_error(trained, tmp_path,
                                                   run_script_main):
    # refused before the runner is built: main() in this process (a
    # subprocess would import torch and MMSeg again)
    proc = run_script_main(TEST, CONFIG,
                           osp.join(trained['work_dir'], 'iter_6.pth'),
                           '--tta', cwd=str(tmp_path))
    assert proc.returncode != 0
    assert 'tta_pipeline' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_dist_train_and_test_two_cpu_processes(trained, data_root,
                                               data_options, free_port,
                                               tmp_path):
    (tmp_path / 'rank_dump_hook.py').write_text(RANK_DUMP_HOOK)
    config = tmp_path / 'dist_config.py'
    config.write_text(DIST_CONFIG.format(base=CONFIG))
    work_dir = tmp_path / 'dist_work'
    env = dict(
        PORT=str(free_port()),
        PYTHONPATH=os.pathsep.join(
            [str(tmp_path), os.environ.get('PYTHONPATH', '')]),
        OMP_NUM_THREADS='1')
    proc = run([
        'bash', DIST_TRAIN,
        str(config), '2', '--work-dir',
        str(work_dir), *data_options(data_root, 4, 2)
    ],
               str(tmp_path),
               env=env)
    out = proc.stdout
    assert 'Distributed training: True' in out
    assert 'GPU number: 2' in out  # MMEngine's name for the world size
    assert 'CPU distributed data parallel: backend gloo, world size 2' in out
    assert 'SyncBatchNorm layer(s) reverted to BatchNorm' in out
    assert 'Iter(train) [4/4]' in out
    # the tool destroyed the process group before the interpreter's exit
    for rank in (0, 1):
        assert f'rank {rank}: process group at exit: False' in out

    # both ranks trained: each saved its parameters; the ranks saw
    # different halves of the data, so equal parameters mean that DDP
    # averaged the gradients
    rank0 = torch.load(work_dir / 'rank0.pth')
    rank1 = torch.load(work_dir / 'rank1.pth')
    assert rank0.keys() == rank1.keys() and len(rank0) > 100
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key

    # one set of checkpoints, written by rank 0, holding those parameters
    ckpts = sorted(n for n in os.listdir(work_dir) if n.endswith('.pth'))
    assert ckpts == ['iter_2.pth', 'iter_4.pth', 'rank0.pth', 'rank1.pth']
    assert out.count('Saving checkpoint at 4 iterations') == 1
    ckpt = load_local_checkpoint(str(work_dir / 'iter_4.pth'))
    assert ckpt['meta']['iter'] == 4
    for key, value in rank0.items():
        assert torch.equal(ckpt['state_dict'][key], value), key

    # distributed test of the single-process checkpoint: same mIoU as one
    # process (the results of both ranks are gathered)
    # (the same model as CONFIG, importing the module of the exit report)
    test_config = tmp_path / 'dist_test_config.py'
    test_config.write_text(DIST_TEST_CONFIG.format(base=CONFIG))
    proc = run([
        'bash', DIST_TEST,
        str(test_config),
        osp.join(trained['work_dir'], 'iter_6.pth'), '2', '--work-dir',
        str(tmp_path / 'dist_test_work'), '--cfg-options',
        f'test_dataloader.dataset.data_root={data_root}'
    ],
               str(tmp_path),
               env=dict(env, PORT=str(free_port())))
    assert 'Iter(test) [2/2]' in proc.stdout  # 4 images over 2 ranks
    for rank in (0, 1):
        assert f'rank {rank}: process group at exit: False' in proc.stdout
    assert miou(proc.stdout) == miou(trained['resumed'].stdout)


def _stop(proc):
    """End a launcher that is still running: SIGTERM, on which torchrun
    stops its workers (they run in sessions of their own), then SIGKILL."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)


def test_dist_train_two_nodes(data_root, data_options, free_port, tmp_path):
    """tools/dist_train.sh with NNODES=2, one process per node, both nodes
    on this machine: two launches, NODE_RANK 0 and 1, gloo. Each node has a
    work dir of its own here, so that what each rank writes can be seen (on
    a cluster the nodes share one, see README)."""
    (tmp_path / 'rank_dump_hook.py').write_text(RANK_DUMP_HOOK)
    config = tmp_path / 'dist_config.py'
    config.write_text(DIST_CONFIG.format(base=CONFIG))
    env = dict(os.environ,
               NNODES='2',
               MASTER_ADDR='127.0.0.1',
               PORT=str(free_port()),
               PYTHONPATH=os.pathsep.join(
                   [str(tmp_path), os.environ.get('PYTHONPATH', '')]),
               OMP_NUM_THREADS='1')
    nodes, timed_out = [], False
    try:
        for rank in (0, 1):
            with open(tmp_path / f'node{rank}.out', 'wb') as out:
                nodes.append(
                    subprocess.Popen([
                        'bash', DIST_TRAIN,
                        str(config), '1', '--work-dir',
                        str(tmp_path / f'node{rank}'),
                        *data_options(data_root, 4, 2)
                    ],
                                     cwd=str(tmp_path),
                                     env=dict(env, NODE_RANK=str(rank)),
                                     stdout=out,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True))
        deadline = time.monotonic() + TIMEOUT
        for node in nodes:
            node.wait(timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        for node in nodes:
            _stop(node)
    outs = [(tmp_path / f'node{rank}.out').read_text(errors='replace')
            for rank in range(len(nodes))]
    for rank, (node, out) in enumerate(zip(nodes, outs)):
        assert not timed_out and node.returncode == 0, (
            f'node {rank}: ' + (f'still running after {TIMEOUT} s' if
                                timed_out else f'exit {node.returncode}') +
            f'\n{out[-4000:]}')
        assert f'rank {rank}: process group at exit: False' in out
    assert 'CPU distributed data parallel: backend gloo, world size 2' \
        in outs[0]
    assert 'Iter(train) [4/4]' in outs[0]

    # the ranks saw different halves of the data and end with the same
    # parameters: the gradients were averaged across the nodes
    node0, node1 = tmp_path / 'node0', tmp_path / 'node1'
    rank0 = torch.load(node0 / 'rank0.pth')
    rank1 = torch.load(node1 / 'rank1.pth')
    assert rank0.keys() == rank1.keys() and len(rank0) > 100
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key

    # one checkpoint set, written by rank 0 and holding those parameters;
    # rank 1 wrote nothing but its parameters (and perhaps a log)
    assert sorted(n for n in os.listdir(node0) if n.endswith('.pth')) == [
        'iter_2.pth', 'iter_4.pth', 'rank0.pth'
    ]
    assert (node0 / 'last_checkpoint').read_text().strip() == str(
        node0 / 'iter_4.pth')
    ckpt = load_local_checkpoint(str(node0 / 'iter_4.pth'))
    assert ckpt['meta']['iter'] == 4
    assert len(ckpt['rng_states']) == 2  # one per rank
    for key, value in rank0.items():
        assert torch.equal(ckpt['state_dict'][key], value), key
    written = [
        osp.relpath(osp.join(folder, name), node1)
        for folder, _, names in os.walk(node1) for name in names
    ]
    assert [n for n in written if not n.endswith('.log')] == ['rank1.pth']


@pytest.mark.parametrize('script, args', [(DIST_TRAIN, [CONFIG, '1']),
                                          (DIST_TEST, [CONFIG, 'x.pth', '1'])])
@pytest.mark.parametrize('missing', ['NODE_RANK', 'MASTER_ADDR'])
def test_dist_scripts_on_several_nodes_need_node_rank_and_master(
        script, args, missing, tmp_path, assert_one_line_error):
    # the defaults (0, 127.0.0.1) would start a second node 0 on node 1
    env = dict(os.environ, NNODES='2', NODE_RANK='1', MASTER_ADDR='10.0.0.1')
    del env[missing]
    proc = subprocess.run(['bash', script, *args],
                          cwd=str(tmp_path),
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=TIMEOUT)
    assert_one_line_error(proc, f'NNODES=2 needs {missing} on every node')
    assert proc.stdout == ''


@pytest.mark.parametrize('cmd, expected', [
    ([TRAIN, 'no_such_config.py'],
     "config file 'no_such_config.py' does not exist"),
    ([TRAIN, CONFIG, '--resume-from', 'no_such.pth'],
     "checkpoint file 'no_such.pth' given to --resume-from does not exist"),
    ([TEST, 'no_such_config.py', 'x.pth'],
     "config file 'no_such_config.py' does not exist"),
    ([TEST, CONFIG, 'no_such_ckpt.pth'],
     "checkpoint file 'no_such_ckpt.pth' does not exist"),
    ([TRAIN, CONFIG, '--launcher', 'pytorch'],
     'start with tools/dist_train.sh or python -m torch.distributed.run'),
])
def test_wrong_arguments_fail_cleanly(cmd, expected, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != 'WORLD_SIZE'}
    proc = subprocess.run([sys.executable, *cmd],
                          cwd=str(tmp_path),
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=TIMEOUT)
    assert proc.returncode != 0
    assert 'Traceback' not in proc.stderr
    # argparse's usage, then one line of error
    assert proc.stderr.strip().splitlines()[-1].endswith(expected)


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU-only behaviour')
@pytest.mark.parametrize('wrapper_cfg, expected', [
    (None,
     dict(type='CPUDistributedDataParallel', broadcast_buffers=False,
          find_unused_parameters=False)),
    (dict(type='MMDistributedDataParallel', broadcast_buffers=True),
     dict(type='CPUDistributedDataParallel', broadcast_buffers=True)),
    (dict(type='MMSeparateDistributedDataParallel'),
     dict(type='MMSeparateDistributedDataParallel', device_ids=None)),
])
def test_setup_cpu_distributed_config(wrapper_cfg, expected, monkeypatch):
    calls = []
    monkeypatch.setattr(dist_utils, 'init_cpu_dist',
                        lambda *args, **kwargs: calls.append((args, kwargs)))
    cfg = Config(
        dict(launcher='pytorch',
             model_wrapper_cfg=wrapper_cfg,
             env_cfg=dict(cudnn_benchmark=True,
                          dist_cfg=dict(backend='nccl', timeout=60))))
    assert setup_cpu_distributed(cfg)
    assert cfg.model_wrapper_cfg.to_dict() == expected
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert not cfg.env_cfg.cudnn_benchmark
    assert calls == [(('pytorch', ), dict(backend='gloo', timeout=60))]

    # not distributed: nothing changes
    cfg = Config(dict(launcher='none', env_cfg=dict(cudnn_benchmark=True)))
    assert not setup_cpu_distributed(cfg)
    assert cfg.to_dict() == dict(launcher='none',
                                 env_cfg=dict(cudnn_benchmark=True))


_WRAPPER_SCRIPT = """
import os, torch, torch.distributed as torch_dist
from mmengine.registry import MODEL_WRAPPERS
from mmseg_refinenet.utils import CPUDistributedDataParallel
from mmseg_refinenet.utils import dist as dist_utils
dist_utils.init_cpu_dist('pytorch')
model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3),
                            torch.nn.SyncBatchNorm(4))
# Runner.wrap_model passes device_ids=[LOCAL_RANK] as a default
wrapped = MODEL_WRAPPERS.build(
    dict(type='CPUDistributedDataParallel', broadcast_buffers=False),
    default_args=dict(module=model, device_ids=[0]))
assert isinstance(wrapped, CPUDistributedDataParallel)
assert wrapped.device_ids is None
assert not any(isinstance(m, torch.nn.SyncBatchNorm)
               for m in wrapped.modules())
wrapped(torch.rand(2, 3, 8, 8)).sum().backward()
assert model[0].weight.grad is not None
del wrapped  # the DDP reducer must go before its process group
torch_dist.destroy_process_group()
print('wrapper ok')
"""


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU-only behaviour')
def test_cpu_ddp_wrapper_reverts_sync_bn(tmp_path, free_port):
    """The wrapper as Runner.wrap_model builds it, in a 1-process group.

    Runs in its own process: a process group is global state, and tearing
    one down inside the test session can hang gloo's destructor.
    """
    env = dict(os.environ, RANK='0', WORLD_SIZE='1', LOCAL_RANK='0',
               MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()))
    proc = subprocess.run([sys.executable, '-c', _WRAPPER_SCRIPT],
                          env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'wrapper ok' in proc.stdout
