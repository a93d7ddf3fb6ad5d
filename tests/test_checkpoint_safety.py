"""Loading a checkpoint never runs code from it, unless the file is trusted.

Every entry point that reads a checkpoint (``load_from``, ``--resume``,
``tools/test.py``, ``tools/infer.py``, the ONNX exporter, both converters,
MMEngine's ``load_checkpoint`` and MMSeg's ``init_model``) is given a file
whose pickle would create a marker folder when unpickled in full: it must be
refused with an error naming the file, the refused global and the way to
trust it, and the marker must not appear. With ``--trust-checkpoint`` (or
``trust_checkpoint = True`` in the config) the same file loads and the
payload runs, which shows that the flag does what it says.
"""
import glob
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader, load_checkpoint

import mmseg_refinenet  # noqa: F401  (registers the checkpoint loader)
from mmseg_refinenet.converters import frrn_lasagne_layout
from mmseg_refinenet.converters.refinenet import (official_refinenet_buffers,
                                                  official_refinenet_shapes)
from mmseg_refinenet.engine import get_rng_states, set_rng_states
from mmseg_refinenet.utils import (UntrustedCheckpointError,
                                   globals_in_pickle, load_local_checkpoint,
                                   trusted_checkpoints)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = osp.join(REPO, 'tools')
TRAIN = osp.join(TOOLS, 'train.py')
TEST = osp.join(TOOLS, 'test.py')
INFER = osp.join(TOOLS, 'infer.py')
EXPORT = osp.join(TOOLS, 'deployment', 'pytorch2onnx.py')
REFINENET2MMSEG = osp.join(TOOLS, 'model_converters', 'refinenet2mmseg.py')
FRRN2MMSEG = osp.join(TOOLS, 'model_converters', 'frrn_lasagne2mmseg.py')
QUICKSTART = osp.join(REPO, 'configs', 'quickstart',
                      'refinenet_r18_1xb8-300it_synthetic-64x64.py')
TINY_CONFIG = """_base_ = [{base!r}]
model = dict(
    backbone=dict(stem_channels=16, base_channels=16),
    decode_head=dict(in_channels=[16, 32, 64, 128], channels=16,
                     adapt_channels=[16, 16, 16, 32]))
"""


class Payload:
    """Unpickled in full, creates the folder ``marker`` and becomes 0.0."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return eval, (f'__import__("os").makedirs({self.marker!r}, '
                      'exist_ok=True) or 0.0', )


class MkdirPayload(Payload):
    """The same through ``os.mkdir`` itself (a global of ``posix``)."""

    def __reduce__(self):
        return os.mkdir, (self.marker, )


def assert_refused(text, path, refused='builtins.eval'):
    """``text`` is the refusal of the file ``path``: it names the file, the
    refused global and the two ways to trust the file."""
    for fragment in (str(path), f'the global {refused}',
                     'before anything of it ran', '--trust-checkpoint',
                     'trust_checkpoint = True'):
        assert fragment in text, text


def one_error_line(stderr):
    """The ``error: ...`` line of a tool's refusal (the last line)."""
    lines = stderr.strip().splitlines()
    assert lines and 'error: ' in lines[-1], stderr
    assert 'Traceback' not in stderr, stderr
    return lines[-1]


@pytest.fixture
def marker(tmp_path):
    """Where a payload that ran leaves its folder."""
    return tmp_path / 'payload_ran'


@pytest.fixture(scope='module')
def trained(tmp_path_factory, synthetic_data_root, short_schedule_options):
    """A tiny RefineNet trained for 2 iterations by tools/train.py: its
    config, its ``--cfg-options``, its full checkpoint."""
    root = tmp_path_factory.mktemp('trained')
    config = root / 'tiny.py'
    config.write_text(TINY_CONFIG.format(base=QUICKSTART))
    options = short_schedule_options(synthetic_data_root, 2, 2)
    work_dir = root / 'work_dir'
    proc = subprocess.run(
        [sys.executable, TRAIN, str(config), '--work-dir', str(work_dir),
         '--cfg-options', *options],
        capture_output=True, text=True, cwd=str(root), timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return dict(config=str(config), options=options,
                checkpoint=str(work_dir / 'iter_2.pth'),
                data_root=synthetic_data_root)


def evil_copy(checkpoint, path, marker):
    """``checkpoint`` with a payload added under a key that MMEngine and
    the tools ignore."""
    ckpt = load_local_checkpoint(checkpoint)
    ckpt['extra'] = Payload(marker)
    torch.save(ckpt, path)
    return str(path)


# ---- the loader ------------------------------------------------------------


def test_training_checkpoint_loads_without_trust(trained):
    """What this project's runs write (optimizer, scheduler, message hub
    with numpy buffers, numpy scalars, random generator states) loads
    through the allowlist, and the states can be restored."""
    path = trained['checkpoint']
    names = globals_in_pickle(_data_pkl(path))
    assert 'builtins.getattr' in names  # HistoryBuffer's methods
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in names
    assert any(n.endswith('multiarray._reconstruct') for n in names)
    ckpt = load_local_checkpoint(path)
    assert ckpt['meta']['iter'] == 2
    losses = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(losses, HistoryBuffer) and len(losses.data[0]) == 2
    assert ckpt['optimizer']['state'] and ckpt['param_schedulers']
    states = ckpt['rng_states'][0]
    set_rng_states(states)
    drawn = np.random.rand(), torch.rand(2)
    set_rng_states(states)
    assert drawn[0] == np.random.rand() and torch.equal(drawn[1],
                                                        torch.rand(2))


def _data_pkl(path):
    import zipfile
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith('data.pkl'))
        return archive.read(name)


def test_amp_scheduler_and_numpy_states_load(tmp_path):
    """An AmpOptimWrapper's state (GradScaler), MultiStepLR's Counter of
    milestones, numpy arrays, scalars and generator states load."""
    from mmengine.optim import MultiStepLR
    param = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    param.grad = torch.ones(2)
    optimizer.step()
    scheduler = MultiStepLR(optimizer, milestones=[2, 4], by_epoch=False)
    if hasattr(torch.amp, 'GradScaler'):
        scaler = torch.amp.GradScaler('cpu').state_dict()
    else:  # what torch.cuda.amp.GradScaler.state_dict() holds
        scaler = dict(scale=65536.0, growth_factor=2.0, backoff_factor=0.5,
                      growth_interval=2000, _growth_tracker=0)
    assert scaler
    ckpt = dict(
        meta=dict(seed=np.int64(3), eta=np.float64(1.5),
                  best=np.float32(0.25), hist=np.arange(4.0)),
        optimizer=dict(optimizer.state_dict(), loss_scaler=scaler),
        param_schedulers=[scheduler.state_dict()],
        rng_states=[get_rng_states()])
    path = tmp_path / 'amp.pth'
    torch.save(ckpt, path)
    loaded = load_local_checkpoint(str(path))
    assert loaded['optimizer']['loss_scaler'] == scaler
    assert loaded['param_schedulers'][0]['milestones'] == {2: 1, 4: 1}
    assert loaded['meta']['best'] == np.float32(0.25)
    assert np.array_equal(loaded['meta']['hist'], np.arange(4.0))
    assert torch.equal(loaded['optimizer']['state'][0]['momentum_buffer'],
                       optimizer.state_dict()['state'][0]['momentum_buffer'])


@pytest.mark.parametrize('payload, protocol, refused', [
    (Payload, 2, 'builtins.eval'),
    (MkdirPayload, 2, os.mkdir.__module__ + '.mkdir'),
    (Payload, 4, 'builtins.eval'),
], ids=['eval', 'os.mkdir', 'protocol-4'])
def test_payload_is_refused_and_trusted_file_runs_it(tmp_path, marker,
                                                     payload, protocol,
                                                     refused):
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(2)), extra=payload(marker)),
               path, pickle_protocol=protocol)
    with pytest.raises(UntrustedCheckpointError) as info:
        load_local_checkpoint(str(path))
    assert_refused(str(info.value), path, refused)
    assert info.value.refused == f'the global {refused}'
    assert not marker.exists()
    with trusted_checkpoints(str(tmp_path / 'other.pth')):
        with pytest.raises(UntrustedCheckpointError):
            load_local_checkpoint(str(path))  # another file is trusted
    assert not marker.exists()
    with trusted_checkpoints(str(path)):
        loaded = load_local_checkpoint(str(path))
    assert marker.is_dir()
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2))
    # the trust ended with the block
    os.rmdir(marker)
    with pytest.raises(UntrustedCheckpointError):
        load_local_checkpoint(str(path))
    assert not marker.exists()


class _GetattrPayload:

    def __reduce__(self):
        return getattr, (HistoryBuffer, '__init__')


def test_getattr_is_limited_to_history_buffer_statistics(tmp_path):
    path = tmp_path / 'getattr.pth'
    torch.save(dict(x=_GetattrPayload()), path)
    with pytest.raises(UntrustedCheckpointError,
                       match=r"getattr\(HistoryBuffer, '__init__'\)"):
        load_local_checkpoint(str(path))
    buffer = HistoryBuffer()
    buffer.update(2.0)
    torch.save(dict(x=buffer), path)
    assert load_local_checkpoint(str(path))['x'].mean() == 2.0


class _CallResultPayload:
    """Calls what an allowed call returned: HistoryBuffer.mean, got
    through the allowed getattr."""

    def __reduce__(self):
        buffer = HistoryBuffer()
        buffer.update(2.0)
        return HistoryBuffer.mean, (buffer, )


@pytest.mark.parametrize('protocol', [2, 4])
def test_what_an_allowed_call_returns_is_not_called(tmp_path, protocol):
    path = tmp_path / 'call.pth'
    torch.save(dict(x=_CallResultPayload()), path, pickle_protocol=protocol)
    with pytest.raises(UntrustedCheckpointError,
                       match='before anything of it ran.*HistoryBuffer.mean'):
        load_local_checkpoint(str(path))


@pytest.mark.skipif(not hasattr(torch.serialization, 'get_safe_globals'),
                    reason='torch without add_safe_globals')
def test_the_allowlist_is_added_for_the_load_only(tmp_path, trained):
    """Loading leaves torch's process-wide allowlist as it was, including
    an entry the process had registered itself."""
    torch.serialization.add_safe_globals([HistoryBuffer])
    try:
        before = set(torch.serialization.get_safe_globals())
        load_local_checkpoint(trained['checkpoint'])
        assert set(torch.serialization.get_safe_globals()) == before
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(
            [g for g in before if g is not HistoryBuffer])


def test_mmengine_and_mmseg_loaders_are_safe(tmp_path, marker, trained):
    """MMEngine's CheckpointLoader and load_checkpoint (load_from,
    init_cfg) and MMSeg's init_model read local files through the loader."""
    from mmseg.apis import init_model
    evil = evil_copy(trained['checkpoint'], tmp_path / 'evil.pth', marker)
    for load in (
            lambda: CheckpointLoader.load_checkpoint(evil, 'cpu'),
            lambda: load_checkpoint(torch.nn.Linear(1, 1), evil, 'cpu'),
            lambda: init_model(trained['config'], evil, device='cpu')):
        with pytest.raises(UntrustedCheckpointError) as info:
            load()
        assert_refused(str(info.value), evil)
        assert not marker.exists()
    with trusted_checkpoints(evil):
        model = init_model(trained['config'], evil, device='cpu')
    assert marker.is_dir()
    assert model.dataset_meta['classes'][1] == 'disc'


def test_config_key_must_be_a_bool():
    from mmengine.config import Config

    from mmseg_refinenet.utils import config_trusts_checkpoint
    assert config_trusts_checkpoint(Config(dict())) is False
    assert config_trusts_checkpoint(Config(dict(trust_checkpoint=True)))
    with pytest.raises(ValueError, match="trust_checkpoint .* got 'yes'"):
        config_trusts_checkpoint(Config(dict(trust_checkpoint='yes')))


# ---- the tools -------------------------------------------------------------


def test_resume_refuses_payload_and_trusts_on_request(tmp_path, marker,
                                                      trained,
                                                      short_schedule_options,
                                                      run_script_main):
    evil = evil_copy(trained['checkpoint'], tmp_path / 'evil.pth', marker)
    options = short_schedule_options(trained['data_root'], 3, 3)
    args = [trained['config'], '--resume-from', evil, '--cfg-options',
            *options]
    refused = run_script_main(TRAIN, *args, '--work-dir', tmp_path / 'a')
    assert refused.returncode == 2
    assert_refused(one_error_line(refused.stderr), evil)
    assert not marker.exists()
    assert not osp.exists(tmp_path / 'a' / 'iter_3.pth')

    trusted = run_script_main(TRAIN, *args, '--work-dir', tmp_path / 'b',
                              '--trust-checkpoint')
    assert trusted.returncode == 0, trusted.stderr[-3000:]
    assert marker.is_dir()
    assert 'resumed epoch: 0, iter: 2' in trusted.stdout + trusted.stderr
    assert osp.isfile(tmp_path / 'b' / 'iter_3.pth')


def test_load_from_refuses_payload_and_config_key_trusts(
        tmp_path, marker, trained, short_schedule_options, run_script_main):
    evil = evil_copy(trained['checkpoint'], tmp_path / 'evil.pth', marker)
    options = [*short_schedule_options(trained['data_root'], 1, 1),
               f'load_from={evil}']
    refused = run_script_main(TRAIN, trained['config'], '--work-dir',
                              tmp_path / 'a', '--cfg-options', *options)
    assert refused.returncode == 2
    assert_refused(one_error_line(refused.stderr), evil)
    assert not marker.exists()

    trusted = run_script_main(TRAIN, trained['config'], '--work-dir',
                              tmp_path / 'b', '--cfg-options', *options,
                              'trust_checkpoint=True')
    assert trusted.returncode == 0, trusted.stderr[-3000:]
    assert marker.is_dir()
    assert osp.isfile(tmp_path / 'b' / 'iter_1.pth')


def test_test_tool_refuses_payload_and_trusts_on_request(
        tmp_path, marker, trained, run_script_main):
    evil = evil_copy(trained['checkpoint'], tmp_path / 'evil.pth', marker)
    data = trained['data_root']
    args = [trained['config'], evil, '--work-dir', tmp_path / 'work',
            '--cfg-options', f'test_dataloader.dataset.data_root={data}']
    refused = run_script_main(TEST, *args)
    assert refused.returncode == 2
    assert_refused(one_error_line(refused.stderr), evil)
    assert not marker.exists()

    trusted = run_script_main(TEST, *args, '--trust-checkpoint')
    assert trusted.returncode == 0, trusted.stderr[-3000:]
    assert marker.is_dir()
    assert 'mIoU' in trusted.stdout + trusted.stderr


def test_infer_refuses_payload_and_trusts_on_request(tmp_path, marker,
                                                     trained,
                                                     run_script_main):
    evil = evil_copy(trained['checkpoint'], tmp_path / 'evil.pth', marker)
    image = sorted(
        glob.glob(osp.join(trained['data_root'], 'img_dir', 'val',
                           '*.png')))[0]
    out = tmp_path / 'out'
    args = [image, '--config', trained['config'], '--checkpoint', evil,
            '--out-dir', out, '--device', 'cpu']
    refused = run_script_main(INFER, *args)
    assert refused.returncode == 2
    assert_refused(one_error_line(refused.stderr), evil)
    assert not marker.exists() and not out.exists()

    trusted = run_script_main(INFER, *args, '--trust-checkpoint')
    assert trusted.returncode == 0, trusted.stderr[-3000:]
    assert marker.is_dir()
    assert (out / 'legend.png').is_file()


def test_onnx_export_refuses_payload_and_trusts_on_request(
        tmp_path, marker, trained, run_script_main, require_module):
    require_module('onnx')
    evil = evil_copy(trained['checkpoint'], tmp_path / 'evil.pth', marker)
    out = tmp_path / 'model.onnx'
    args = [trained['config'], '--checkpoint', evil, '--out', out,
            '--shape', '64', '64', '--exporter', 'torchscript']
    refused = run_script_main(EXPORT, *args)
    assert refused.returncode == 2
    assert_refused(one_error_line(refused.stderr), evil)
    assert not marker.exists() and not out.exists()

    trusted = run_script_main(EXPORT, *args, '--trust-checkpoint')
    assert trusted.returncode == 0, trusted.stderr[-3000:]
    assert marker.is_dir()
    assert out.is_file()


def test_refinenet_converter_refuses_payload_and_trusts_on_request(
        tmp_path, marker, run_script_main):
    """A released Light-Weight RefineNet checkpoint as its training script
    saved it ({'segmenter': state dict, 'best_val': ...})."""
    shapes = official_refinenet_shapes(50, 3, lightweight=True)
    shapes.update(official_refinenet_buffers(50, 3, lightweight=True)[0])
    state_dict = {k: torch.ones(s) for k, s in shapes.items()}
    src = tmp_path / 'released.pth'
    torch.save(dict(segmenter=state_dict, epoch_start=np.int64(5),
                    best_val=Payload(marker)), src)
    dst = tmp_path / 'converted.pth'
    refused = run_script_main(REFINENET2MMSEG, src, dst)
    assert refused.returncode == 2
    assert_refused(one_error_line(refused.stderr), src)
    assert not marker.exists() and not dst.exists()

    trusted = run_script_main(REFINENET2MMSEG, src, dst,
                              '--trust-checkpoint')
    assert trusted.returncode == 0, trusted.stderr
    assert marker.is_dir() and dst.is_file()
    # a file without objects loads without trust
    torch.save(dict(segmenter=state_dict, best_val=np.float64(0.7)), src)
    os.remove(dst)
    assert run_script_main(REFINENET2MMSEG, src, dst).returncode == 0
    assert dst.is_file()


def test_frrn_converter_refuses_object_array_and_trusts_on_request(
        tmp_path, marker, run_script_main):
    """An .npz whose array needs ``allow_pickle``: one 'beta' array is an
    array of Python objects (numbers, and one payload)."""
    layout = frrn_lasagne_layout('A', 19)
    rng = np.random.default_rng(0)
    arrays = [rng.random(s, dtype=np.float32) + 0.5 for _, _, s in layout]
    index = next(i for i, (_, kind, _) in enumerate(layout)
                 if kind == 'beta')
    objects = arrays[index].astype(object)
    objects.flat[0] = Payload(marker)  # becomes 0.0 when unpickled
    arrays[index] = objects
    src = tmp_path / 'frrn_a.npz'
    np.savez(src, *arrays)
    dst = tmp_path / 'frrn_a.pth'
    args = [src, dst, '--arch', 'A', '--num-classes', '19']
    refused = run_script_main(FRRN2MMSEG, *args)
    assert refused.returncode == 2
    line = one_error_line(refused.stderr)
    assert_refused(line, src)
    assert f'arr_{index}' in line
    assert not marker.exists() and not dst.exists()

    trusted = run_script_main(FRRN2MMSEG, *args, '--trust-checkpoint')
    assert trusted.returncode == 0, trusted.stderr
    assert marker.is_dir() and dst.is_file()
