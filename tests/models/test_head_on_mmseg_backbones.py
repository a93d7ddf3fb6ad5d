"""RefineNetHead on MMSeg's other backbones.

The README says the head works on any MMSeg backbone that returns a list of
feature maps; the other tests use ResNets only. Here it trains one step as
the ``decode_head`` of an ``EncoderDecoder`` on small versions of MMSeg's
transformer, multi-branch, mobile and plain-ViT backbones, whose features
differ from a ResNet's in width, count (CGNet has 3) and stride (a ViT's are
all 1/16).
"""
import pytest
import torch
from mmengine.config import ConfigDict

from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

import mmseg_refinenet  # noqa: F401

register_all_modules()

SIZE = 64

# name -> (backbone config, output widths, stride of the largest output)
BACKBONES = {
    'MixVisionTransformer': (dict(
        type='MixVisionTransformer',
        embed_dims=16,
        num_layers=[1, 1, 1, 1],
        num_heads=[1, 2, 5, 8],
        sr_ratios=[8, 4, 2, 1]), [16, 32, 80, 128], 4),
    'SwinTransformer': (dict(
        type='SwinTransformer',
        embed_dims=16,
        depths=[1, 1, 1, 1],
        num_heads=[1, 2, 4, 8],
        window_size=4), [16, 32, 64, 128], 4),
    'HRNet': (dict(
        type='HRNet',
        extra=dict(
            stage1=dict(
                num_modules=1,
                num_branches=1,
                block='BOTTLENECK',
                num_blocks=(1, ),
                num_channels=(8, )),
            stage2=dict(
                num_modules=1,
                num_branches=2,
                block='BASIC',
                num_blocks=(1, 1),
                num_channels=(8, 16)),
            stage3=dict(
                num_modules=1,
                num_branches=3,
                block='BASIC',
                num_blocks=(1, 1, 1),
                num_channels=(8, 16, 32)),
            stage4=dict(
                num_modules=1,
                num_branches=4,
                block='BASIC',
                num_blocks=(1, 1, 1, 1),
                num_channels=(8, 16, 32, 64)))), [8, 16, 32, 64], 4),
    'MobileNetV2': (dict(
        type='MobileNetV2',
        widen_factor=0.5,
        strides=(1, 2, 2, 2, 1, 2, 1),
        dilations=(1, 1, 1, 1, 1, 1, 1),
        out_indices=(1, 2, 4, 6)), [16, 16, 48, 160], 4),
    'MSCAN': (dict(
        type='MSCAN',
        embed_dims=[16, 32, 80, 128],
        depths=[1, 1, 1, 1],
        mlp_ratios=[2, 2, 2, 2]), [16, 32, 80, 128], 4),
    'CGNet': (dict(type='CGNet', num_channels=(8, 16, 32),
                   num_blocks=(1, 1)), [11, 35, 64], 2),
    'VisionTransformer': (dict(
        type='VisionTransformer',
        img_size=(SIZE, SIZE),
        embed_dims=32,
        num_layers=4,
        num_heads=2,
        out_indices=(0, 1, 2, 3)), [32, 32, 32, 32], 16),
}

HEADS = {
    'refinenet-4cascade':
    dict(),
    'lw-refinenet':
    dict(
        adapt_kernel_size=1,
        fusion_kernel_size=1,
        crp_kernel_size=1,
        num_input_rcus=0,
        num_output_rcus=0),
}


@pytest.mark.parametrize('head_name', sorted(HEADS))
@pytest.mark.parametrize('backbone_name', sorted(BACKBONES))
def test_head_trains_on_mmseg_backbone(backbone_name, head_name, seg_samples):
    torch.manual_seed(0)
    backbone, widths, stride = BACKBONES[backbone_name]
    model = MODELS.build(
        dict(
            type='EncoderDecoder',
            backbone=backbone,
            decode_head=dict(
                type='RefineNetHead',
                in_channels=widths,
                in_index=list(range(len(widths))),
                channels=16,
                num_classes=5,
                norm_cfg=None,
                zero_init_residual=True,
                **HEADS[head_name]),
            train_cfg=ConfigDict(),
            test_cfg=ConfigDict(mode='whole')))
    model.init_weights()
    inputs = torch.randn(2, 3, SIZE, SIZE)
    samples = seg_samples(2, SIZE, SIZE, 5)

    # The logits come out at the resolution of the largest feature map.
    features = model.extract_feat(inputs)
    assert [f.shape[1] for f in features] == widths
    logits = model.decode_head(features)
    assert logits.shape == (2, 5, SIZE // stride, SIZE // stride)

    losses = model(inputs, samples, mode='loss')
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(loss)
    loss.backward()
    # Every parameter of the model takes part: gradients reach the first
    # backbone layer and every path of the head.
    missing = [
        name for name, p in model.named_parameters()
        if p.requires_grad and p.grad is None
    ]
    assert not missing, f'parameters without gradient: {missing[:5]}'
    first = next(p for p in model.backbone.parameters() if p.requires_grad)
    assert first.grad.abs().sum() > 0

    model.eval()
    with torch.no_grad():
        pred = model(inputs, mode='predict')
    assert pred[0].pred_sem_seg.shape == (SIZE, SIZE)
