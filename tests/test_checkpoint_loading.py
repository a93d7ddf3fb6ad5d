"""Checkpoints load under torch >= 2.6 (weights_only default) and older
torch alike, pretrained backbone weights load through ``init_cfg``, bad
files fail clearly. Files that would run code: test_checkpoint_safety.py."""
import numpy as np
import pytest
import torch
from mmengine.runner import CheckpointLoader, load_checkpoint
from mmengine.utils import digit_version

from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

import mmseg_refinenet  # noqa: F401
from mmseg_refinenet.utils import load_local_checkpoint

register_all_modules()


def test_full_mmengine_checkpoint_loads(tmp_path):
    """A checkpoint as MMEngine writes it (numpy objects in 'meta',
    optimizer state) is rejected by torch.load's weights_only default of
    torch >= 2.6 but loads through the plugin's loader, on every torch."""
    path = tmp_path / 'iter_10.pth'
    ckpt = dict(
        meta=dict(
            iter=10,
            seed=np.int64(3),
            history=np.arange(4, dtype=np.float64)),
        state_dict=dict(w=torch.ones(2)),
        optimizer=dict(state={}, param_groups=[dict(lr=0.01)]))
    torch.save(ckpt, path)
    if digit_version(torch.__version__) >= digit_version('2.6.0'):
        with pytest.raises(Exception):
            torch.load(path)  # what MMEngine 0.10.7 would call
    loaded = CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert loaded['meta']['iter'] == 10
    assert np.array_equal(loaded['meta']['history'], np.arange(4))


def test_missing_and_corrupt_checkpoints_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_local_checkpoint(str(tmp_path / 'nope.pth'))
    good = tmp_path / 'good.pth'
    torch.save(dict(state_dict=dict(w=torch.randn(1000))), good)
    bad = tmp_path / 'truncated.pth'
    bad.write_bytes(good.read_bytes()[:300])
    with pytest.raises(RuntimeError, match='truncated.pth.*corrupt'):
        load_local_checkpoint(str(bad))


@pytest.mark.parametrize('legacy', [False, True])
def test_every_truncation_is_reported_as_a_damaged_file(tmp_path, legacy):
    """torch.load fails on a cut file with EOFError, UnpicklingError,
    RuntimeError or OSError (EINVAL) depending on where it was cut: each
    names the file and says it is damaged."""
    good = tmp_path / 'good.pth'
    torch.save(
        dict(state_dict=dict(w=torch.randn(5000)), meta=dict(iter=4)),
        good,
        _use_new_zipfile_serialization=not legacy)
    data = good.read_bytes()
    bad = tmp_path / 'cut.pth'
    for cut in (0, 10, 100, 300, 1000, 5000, len(data) - 100,
                len(data) - 10, len(data) - 1):
        bad.write_bytes(data[:cut])
        with pytest.raises(RuntimeError,
                           match='cut.pth.*truncated, corrupt') as info:
            load_local_checkpoint(str(bad))
        assert 'delete it' in str(info.value)


@pytest.mark.parametrize('torch_allowlist', [False, True])
def test_a_file_that_is_no_pickle_is_reported_as_damaged(
        tmp_path, monkeypatch, torch_allowlist):
    """Text or other bytes that are no pickle instructions: torch's
    weights-only unpickler and the restricted Python unpickler (torch <
    2.6) both report a damaged file, not an error of their own."""
    from mmseg_refinenet.utils import checkpoint
    if torch_allowlist and not checkpoint._TORCH_WEIGHTS_ONLY_ALLOWLIST:
        pytest.skip('torch < 2.6 has no weights-only allowlist')
    monkeypatch.setattr(checkpoint, '_TORCH_WEIGHTS_ONLY_ALLOWLIST',
                        torch_allowlist)
    garbage = tmp_path / 'notes.pth'
    garbage.write_bytes(b'not a checkpoint')
    with pytest.raises(RuntimeError,
                       match='notes.pth.*truncated, corrupt or not a torch'):
        load_local_checkpoint(str(garbage))


def test_a_readable_checkpoint_that_fails_is_not_called_corrupt(tmp_path):
    """An error while loading a sound file (here from map_location, as
    for a GPU checkpoint on a machine without one) names the file and the
    error, without advice to delete it."""
    path = tmp_path / 'sound.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(3))), path)

    def no_such_device(storage, location):
        raise RuntimeError('Attempting to deserialize object on a CUDA '
                           'device but torch.cuda.is_available() is False')

    with pytest.raises(RuntimeError,
                       match='sound.pth.*could not be loaded.*CUDA') as info:
        load_local_checkpoint(str(path), map_location=no_such_device)
    assert 'corrupt' not in str(info.value)
    assert 'delete' not in str(info.value)


def test_pretrained_torchvision_resnet_through_init_cfg(tmp_path):
    """The configs' ImageNet init: a torchvision-layout ResNet state dict
    (made here with random values) loads into the RefineNet backbone."""
    cfg = dict(
        type='EncoderDecoder',
        backbone=dict(
            type='ResNet', depth=18, out_indices=(0, 1, 2, 3),
            style='pytorch'),
        decode_head=dict(
            type='RefineNetHead',
            in_channels=[64, 128, 256, 512],
            in_index=[0, 1, 2, 3],
            channels=32,
            num_classes=3))
    reference = MODELS.build(cfg).backbone
    torchvision_layout = {
        k: torch.randn_like(v) if v.is_floating_point() else v
        for k, v in reference.state_dict().items()
    }
    torchvision_layout['fc.weight'] = torch.randn(1000, 512)  # ignored
    torchvision_layout['fc.bias'] = torch.randn(1000)
    path = tmp_path / 'resnet18-imagenet.pth'
    torch.save(torchvision_layout, path)

    cfg['backbone']['init_cfg'] = dict(type='Pretrained', checkpoint=str(path))
    model = MODELS.build(cfg)
    model.init_weights()
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, torchvision_layout[k]), k


def test_load_from_style_whole_model_checkpoint(tmp_path):
    model = MODELS.build(
        dict(
            type='EncoderDecoder',
            backbone=dict(type='ResNet', depth=18, out_indices=(0, 1, 2, 3)),
            decode_head=dict(
                type='RefineNetHead',
                in_channels=[64, 128, 256, 512],
                in_index=[0, 1, 2, 3],
                channels=32,
                num_classes=3)))
    path = tmp_path / 'model.pth'
    state = {k: torch.randn_like(v) if v.is_floating_point() else v
             for k, v in model.state_dict().items()}
    torch.save(dict(meta=dict(epoch=np.int64(1)), state_dict=state), path)
    load_checkpoint(model, str(path), map_location='cpu', strict=True)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])
