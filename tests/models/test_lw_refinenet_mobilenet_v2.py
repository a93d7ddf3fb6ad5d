"""Light-Weight RefineNet on MobileNetV2 as a RefineNetHead configuration:
the layers, widths, activations and parameter count of the released
LW-RefineNet-MobileNetV2 (DrSleep/light-weight-refinenet ``mbv2``)."""
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm

from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

import mmseg_refinenet  # noqa: F401
from mmseg_refinenet.converters import (official_buffers,
                                        official_lw_mobilenet_v2_shapes,
                                        official_lw_mobilenet_v2_to_mmseg_key)

register_all_modules()

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RELEASED = osp.join(
    REPO, 'configs/refinenet/'
    'lw-refinenet_mobilenet-v2-released_4xb4-20k_voc12aug-512x512.py')
IMAGENET = osp.join(
    REPO, 'configs/refinenet/lw-refinenet_mobilenet-v2_4xb4-40k_voc12aug-'
    '512x512.py')

# The released model's layers, written out by hand from its published
# description (independently of the converter's layout):
# stem: 3x3 conv 3 -> 32 stride 2 + BN; then (expand ratio, width, blocks)
MBV2 = [(1, 16, 1), (6, 24, 2), (6, 32, 3), (6, 64, 4), (6, 96, 3),
        (6, 160, 3), (6, 320, 1)]


def released_parameter_count(num_classes=21):
    bn = 2  # weight and bias per channel
    n = 3 * 32 * 9 + bn * 32
    c_in = 32
    for t, c, blocks in MBV2:
        for _ in range(blocks):
            hidden = c_in * t
            n += c_in * hidden + bn * hidden  # 1x1 expansion (also t = 1)
            n += hidden * 9 + bn * hidden  # 3x3 depthwise
            n += hidden * c + bn * c  # 1x1 projection
            c_in = c
    n += sum(c * 256 for c in (320, 160, 96, 64, 32, 24))  # conv8..conv3
    n += 4 * 4 * 256 * 256  # crp4..crp1, four 1x1 convs each
    n += 3 * 256 * 256  # conv_adapt4..2
    n += num_classes * 256 * 9 + num_classes  # segm, 3x3 with bias
    return n


def build(path, num_classes=None):
    cfg = Config.fromfile(path)
    cfg.model.backbone.init_cfg = None
    if num_classes is not None:
        cfg.model.decode_head.num_classes = num_classes
    return revert_sync_batchnorm(MODELS.build(cfg.model)).eval()


def test_parameter_count_is_the_released_one():
    model = build(RELEASED)
    ours = sum(p.numel() for p in model.parameters())
    assert ours == released_parameter_count(21) == 3_284_565
    # the paper's 3.3M
    assert round(ours / 1e6, 1) == 3.3
    # MMSeg's MobileNetV2 (ImageNet configs) lacks only the expansion of the
    # first inverted residual: a 32 x 32 1x1 conv and a BN of 32
    imagenet = build(IMAGENET)
    assert ours - sum(p.numel() for p in imagenet.parameters()) == \
        32 * 32 + 2 * 32


def test_same_layers_and_shapes_as_the_published_layout():
    model = build(RELEASED)
    published = official_lw_mobilenet_v2_shapes(21)
    published.update(official_buffers(published)[0])
    mapped = {
        official_lw_mobilenet_v2_to_mmseg_key(k): s
        for k, s in published.items()
    }
    assert len(mapped) == len(published)  # one-to-one
    ours = {
        k: tuple(v.shape)
        for k, v in model.state_dict().items()
        if not k.endswith('num_batches_tracked')
    }
    assert mapped == ours


def test_head_structure_six_levels_relu6_no_rcus():
    model = build(RELEASED)
    head = model.decode_head
    assert head.cascade == [[5, 4], [3, 2], [1], [0]]
    assert [b.in_channels for b in head.blocks] == [[256, 256],
                                                    [256, 256, 256],
                                                    [256, 256], [256, 256]]
    for b, block in enumerate(head.blocks):
        # no RCUs anywhere; ReLU6 before a 4-stage CRP of 1x1 convs
        assert all(len(r) == 0 for r in block.input_rcus)
        assert len(block.output_rcus) == 0
        assert isinstance(block.crp.act, nn.ReLU6)
        assert block.crp.num_stages == 4
        assert all(c.conv.kernel_size == (1, 1) for c in block.crp.convs)
        # backbone paths are summed as they are; only the previous block's
        # output has a (1x1) fusion conv
        convs = list(block.fusion.convs)
        n_paths = len(head.cascade[b])
        assert all(isinstance(c, nn.Identity) for c in convs[:n_paths])
        assert all(c.conv.kernel_size == (1, 1) for c in convs[n_paths:])
        assert len(convs) - n_paths == (0 if b == 0 else 1)
    assert all(c.conv.kernel_size == (1, 1) and c.conv.bias is None
               for c in head.adapt_convs)
    assert head.conv_seg.kernel_size == (3, 3)
    assert head.dropout is None and head.input_dropout is None


def test_six_levels_at_the_released_resolutions():
    model = build(RELEASED)
    with torch.no_grad():
        feats = model.backbone(torch.randn(1, 3, 64, 96))
    assert [(f.shape[1], 64 // f.shape[2], 96 // f.shape[3])
            for f in feats] == [(24, 4, 4), (32, 8, 8), (64, 16, 16),
                                (96, 16, 16), (160, 32, 32), (320, 32, 32)]
    # the backbone's first inverted residual keeps its expansion conv
    first = model.backbone.layer1[0].conv
    assert [m.conv.kernel_size for m in first] == [(1, 1), (3, 3), (1, 1)]
    assert first[0].conv.in_channels == first[0].conv.out_channels == 32
    assert isinstance(first[0].activate, nn.ReLU6)
    with torch.no_grad():
        logits = model.decode_head(feats)
        refined = model.decode_head._forward_feature(feats)
    assert logits.shape == (1, 21, 16, 24)
    assert refined.shape == (1, 256, 16, 24)


@pytest.mark.parametrize('path', [RELEASED, IMAGENET], ids=['released',
                                                            'imagenet'])
def test_trains_a_step(path, seg_samples):
    model = build(path, num_classes=5)
    model.train()
    losses = model.loss(torch.randn(2, 3, 64, 64), seg_samples(2, 64, 64, 5))
    losses['decode.loss_ce'].backward()
    assert torch.isfinite(losses['decode.loss_ce'])
    grad = model.backbone.conv1.conv.weight.grad
    assert grad is not None and grad.abs().sum() > 0
