"""Bad input fails early and clearly (README, "What happens when things go
wrong").

One table: every row triggers one kind of bad input (a model built with the
wrong widths, an image the network cannot take, labels outside the classes,
a broken dataset folder, a checkpoint of another model...) and names

* the exception type that must come out (exactly this class),
* the file that must raise it: the innermost Python frame of the traceback,
  so a row proves *who* raises -- a check of this package, before any
  computation, or (where this package has no say) the first layer of the
  library that does the work,
* regular expressions that the message must match: the offending field or
  file, and what is expected instead.

The checks that read tensor values (NaN / Inf in images and features,
labels outside the classes) wait for the device at every step, so the
models make them only when asked (``check_finite=True``,
``check_labels=True``); their rows build the models with the check on,
and ``test_value_checks_are_off_by_default`` pins that a default model
makes none of them.

Rows with a ``gap`` are bad inputs that this package cannot catch because
the first code to see them is MMSeg's or PyTorch's. The gap names exactly
what that code raises now (type, file, message); the row is a strict
``xfail(raises=<that type>)`` and the test re-raises the error only when
all three match. Any other outcome fails the row: no error, another
error, and also the check it asks for, once someone adds it (a strict
xfail that passes), so that the row is then updated.

Everything is tiny (ResNet-18 with 8 base channels, a 3-stage FRRN of width
8, 16x16 images, two-file datasets), so the table runs in seconds.
"""
import os
import os.path as osp
import re

import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.structures import PixelData
from PIL import Image

from mmseg.registry import DATASETS, MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules

import mmseg_refinenet  # noqa: F401
from mmseg_refinenet.utils import (CheckpointMismatchError,
                                   UntrustedCheckpointError,
                                   load_checkpoint_strict)

register_all_modules()

NUM_CLASSES = 3
RESNET_WIDTHS = [8, 16, 32, 64]

# the files that raise: our checks, or the first library layer that sees
# the input where we cannot
OURS_CHECKS = 'mmseg_refinenet/models/utils/checks.py'
OURS_ARGS = 'mmseg_refinenet/models/utils/arg_checks.py'
OURS_HEAD = 'mmseg_refinenet/models/decode_heads/refinenet_head.py'
OURS_FRRN = 'mmseg_refinenet/models/backbones/frrn.py'
OURS_BLOCKS = 'mmseg_refinenet/models/blocks/refinenet_blocks.py'
OURS_MULTI = 'mmseg_refinenet/models/backbones/multi_scale_backbone.py'
OURS_DATASET = 'mmseg_refinenet/datasets/base_dataset.py'
OURS_CKPT = 'mmseg_refinenet/utils/checkpoint.py'
OURS_STRICT = 'mmseg_refinenet/utils/strict_loading.py'
TORCH_CONV = 'torch/nn/modules/conv.py'
TORCH_FUNCTIONAL = 'torch/nn/functional.py'
MMSEG_PREPROCESSOR = 'mmseg/models/data_preprocessor.py'

# ---- small models -----------------------------------------------------------


def refinenet_cfg(**head):
    head_cfg = dict(
        type='RefineNetHead',
        in_channels=RESNET_WIDTHS,
        in_index=[0, 1, 2, 3],
        channels=8,
        num_classes=NUM_CLASSES)
    head_cfg.update(head)
    return dict(
        type='EncoderDecoder',
        backbone=dict(
            type='ResNetV1c',
            depth=18,
            base_channels=8,
            stem_channels=8,
            out_indices=(0, 1, 2, 3)),
        decode_head=head_cfg,
        test_cfg=ConfigDict(mode='whole'))


def refinenet(**head):
    """In eval mode: a 16x16 image is 1x1 at 1/32, too small for the
    backbone's BatchNorm to train on with one image."""
    return MODELS.build(refinenet_cfg(**head)).eval()


def small_head(**kwargs):
    cfg = refinenet_cfg(**kwargs)['decode_head']
    return MODELS.build(cfg)


FRRN_SPEC = dict(
    arch=None,
    encoder=((1, 8), (1, 8), (1, 8)),
    decoder=((1, 8), (1, 8)),
    base_channels=8,
    residual_channels=4,
    num_stem_units=1)
FRRN_DIVISOR = 8


def frrn_backbone(type='FRRN', **kwargs):
    cfg = dict(type=type, **FRRN_SPEC)
    if type == 'FRRNResNetBaseline':
        cfg.pop('residual_channels')
    cfg.update(kwargs)
    return MODELS.build(cfg)


def frrn_cfg(backbone=None, **head):
    head_cfg = dict(type='FRRNHead', in_channels=8, num_classes=NUM_CLASSES)
    head_cfg.update(head)
    return dict(
        type='EncoderDecoder',
        backbone=dict(type='FRRN', **FRRN_SPEC, **(backbone or {})),
        decode_head=head_cfg)


def frrn(backbone=None, **head):
    """``backbone``: arguments of the FRRN backbone; ``head``: of its
    FRRNHead."""
    return MODELS.build(frrn_cfg(backbone, **head)).eval()


def slide_predict(cfg, crop_size, stride, size):
    """``predict`` of the segmentor ``cfg`` on one ``size`` image, with
    MMSeg's sliding-window inference in ``crop_size`` windows."""
    cfg = dict(cfg, test_cfg=ConfigDict(mode='slide', crop_size=crop_size,
                                        stride=stride))
    model = MODELS.build(cfg).eval()
    meta = dict(img_shape=size, ori_shape=size, pad_shape=size)
    with torch.no_grad():
        return model.predict(image(size=size), [SegDataSample(metainfo=meta)])


def frrn_test_step(test_padding, size=(12, 20)):
    """``test_step`` of the small FRRN on one ``size`` image. Its data
    preprocessor pads training batches (``size_divisor``) and, with
    ``test_padding``, test images too (``test_cfg.size_divisor``); without
    it MMSeg leaves test images unpadded."""
    preprocessor = dict(type='SegDataPreProcessor', size_divisor=FRRN_DIVISOR)
    if test_padding:
        preprocessor['test_cfg'] = dict(size_divisor=FRRN_DIVISOR)
    model = MODELS.build(
        dict(frrn_cfg(), data_preprocessor=preprocessor,
             test_cfg=ConfigDict(mode='whole'))).eval()
    meta = dict(img_shape=size, ori_shape=size)
    data = dict(inputs=[torch.randint(0, 256, (3, *size), dtype=torch.uint8)],
                data_samples=[SegDataSample(metainfo=meta)])
    with torch.no_grad():
        return model.test_step(data)


def image(channels=3, size=(16, 16), n=1):
    return torch.rand(n, channels, *size)


def samples(labels):
    out = []
    for i, label in enumerate(labels):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=label[None])
        sample.set_metainfo(dict(seg_map_path=f'ann_dir/train/{i:04d}.png'))
        out.append(sample)
    return out


def labels_with(value, n=2, size=(16, 16)):
    labels = torch.randint(0, NUM_CLASSES, (n, *size))
    labels[:, 0] = 255  # void pixels are fine
    labels[-1, 3, 5] = value
    return labels


def head_loss(head, value):
    logits = torch.randn(2, NUM_CLASSES, 8, 8)
    return head.loss_by_feat(logits, samples(labels_with(value)))


def nan_image():
    x = image()
    x[0, 1, 4, 7] = float('nan')
    return x


def inf_image(size=(16, 16)):
    x = image(size=size)
    x[0, 0, 2, 2] = float('inf')
    return x


# ---- small dataset folders --------------------------------------------------

# type, image suffix, number of classes
DATASET_TYPES = [
    ('CamVidDataset', '.png', 11),
    ('NYUDv2Dataset', '.png', 40),
    ('SUNRGBDDataset', '.jpg', 37),
    ('PascalPersonPartDataset', '.jpg', 7),
]


def write_folder(root, img_suffix='.png', num=2, size=(16, 16)):
    """Images ``root/img_dir/train/000i<suffix>`` and black label maps
    ``root/ann_dir/train/000i.png``."""
    img_dir = osp.join(root, 'img_dir', 'train')
    ann_dir = osp.join(root, 'ann_dir', 'train')
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(num):
        img = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
        Image.fromarray(img).save(osp.join(img_dir, f'{i:04d}{img_suffix}'))
        label = np.zeros(size, dtype=np.uint8)
        Image.fromarray(label).save(osp.join(ann_dir, f'{i:04d}.png'))
    return img_dir, ann_dir


def build_dataset(type_name, root, img='img_dir/train', ann='ann_dir/train',
                  **kwargs):
    prefix = dict(img_path=img)
    if ann is not None:
        prefix['seg_map_path'] = ann
    return DATASETS.build(
        dict(
            type=type_name,
            data_root=str(root),
            data_prefix=prefix,
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations'),
                dict(type='PackSegInputs')
            ],
            **kwargs))


def empty_folder(type_name):

    def trigger(tmp_path):
        write_folder(str(tmp_path))
        os.makedirs(tmp_path / 'img_dir' / 'val')
        build_dataset(type_name, tmp_path, img='img_dir/val')

    return trigger


def missing_folder(tmp_path):
    write_folder(str(tmp_path))
    build_dataset('CamVidDataset', tmp_path, img='img_dir/trian')


def missing_label_folder(tmp_path):
    write_folder(str(tmp_path))
    build_dataset('CamVidDataset', tmp_path, ann='ann_dir/val')


def wrong_suffix(tmp_path):
    write_folder(str(tmp_path), img_suffix='.jpg')
    build_dataset('CamVidDataset', tmp_path)  # expects .png images


def image_without_label(type_name, img_suffix):

    def trigger(tmp_path):
        write_folder(str(tmp_path), img_suffix=img_suffix, num=3)
        os.remove(tmp_path / 'ann_dir' / 'train' / '0001.png')
        build_dataset(type_name, tmp_path)

    return trigger


def image_without_label_ann_file(tmp_path):
    write_folder(str(tmp_path), num=2)
    (tmp_path / 'train.txt').write_text('0000\n0001\n0002\n')
    build_dataset('NYUDv2Dataset', tmp_path, ann_file='train.txt')


def corrupt_file(which, how):

    def trigger(tmp_path):
        img_dir, ann_dir = write_folder(str(tmp_path), num=2)
        path = osp.join(img_dir if which == 'image' else ann_dir,
                        '0001.png')
        data = open(path, 'rb').read()
        with open(path, 'wb') as f:
            f.write(data[:len(data) // 2] if how == 'truncated' else
                    b'not an image at all')
        dataset = build_dataset('CamVidDataset', tmp_path)
        dataset[0]  # the intact file loads
        dataset[1]

    return trigger


# ---- checkpoints ------------------------------------------------------------


def checkpoint_of(model, tmp_path, name='ckpt.pth', prefix=''):
    path = str(tmp_path / name)
    torch.save(
        dict(
            meta=dict(iter=1),
            state_dict={prefix + k: v
                        for k, v in model.state_dict().items()}), path)
    return path


def other_num_classes(tmp_path):
    path = checkpoint_of(refinenet(num_classes=5), tmp_path, 'r18_5cls.pth')
    load_checkpoint_strict(refinenet(), path)


def other_model(tmp_path):
    path = checkpoint_of(frrn(), tmp_path, 'frrn.pth')
    load_checkpoint_strict(refinenet(), path)


def corrupt_checkpoint(tmp_path):
    good = checkpoint_of(refinenet(), tmp_path)
    bad = tmp_path / 'truncated.pth'
    bad.write_bytes(open(good, 'rb').read()[:1000])
    load_checkpoint_strict(refinenet(), str(bad))


def missing_checkpoint(tmp_path):
    load_checkpoint_strict(refinenet(), str(tmp_path / 'nope.pth'))


class _PrintOnLoad:

    def __reduce__(self):
        return print, ('this checkpoint runs code', )


def checkpoint_running_code(tmp_path):
    path = tmp_path / 'runs_code.pth'
    torch.save(dict(state_dict=refinenet().state_dict(), x=_PrintOnLoad()),
               path)
    load_checkpoint_strict(refinenet(), str(path))


def not_a_state_dict(tmp_path):
    path = tmp_path / 'optimizer_only.pth'
    torch.save(dict(optimizer=dict(state={}), meta=dict(iter=3)), path)
    load_checkpoint_strict(refinenet(), str(path))


# ---- the table --------------------------------------------------------------


class Gap:
    """What a row's bad input raises today instead of the row's error:
    exactly ``exc_type``, raised in ``origin`` (a file of the library that
    owns the code, named in ``owner``), with a message matching
    ``pattern``."""

    def __init__(self, exc_type, origin, pattern, owner):
        self.exc_type = exc_type
        self.origin = origin
        self.pattern = pattern
        self.owner = owner

    def matches(self, error, raised_in):
        return (type(error) is self.exc_type
                and raised_in.endswith(self.origin)
                and re.search(self.pattern, str(error)) is not None)

    def reason(self):
        return (f'{self.owner} raises {self.exc_type.__name__} in '
                f'{self.origin} ({self.pattern!r}) before any check of '
                'this package can see the input')


def case(name, trigger, exc_type, origin, *patterns, gap=None):
    marks = []
    if gap is not None:
        marks.append(pytest.mark.xfail(raises=gap.exc_type, strict=True,
                                       reason=gap.reason()))
    return pytest.param(
        trigger, exc_type, origin, patterns, gap, id=name, marks=marks)


CASES = [
    # -- backbone/head channel mismatch (first forward, before computing)
    case('refinenet-in-channels-vs-backbone',
         lambda _: refinenet(in_channels=[8, 16, 32, 128])(
             image(), mode='tensor'), ValueError, OURS_CHECKS,
         r'RefineNetHead', r'in_channels=\[8, 16, 32, 128\]',
         r'have \[8, 16, 32, 64\] channels',
         r'set decode_head\.in_channels=\[8, 16, 32, 64\]'),
    case('frrn-head-in-channels-vs-backbone',
         lambda _: frrn(in_channels=16)(image(), mode='tensor'), ValueError,
         OURS_CHECKS, r'FRRNHead', r'in_channels=16', r'has 8 channels',
         r'set decode_head\.in_channels=8'),
    # -- in_index beyond the backbone's outputs
    case('refinenet-in-index-out-of-range',
         lambda _: refinenet(in_index=[0, 1, 2, 5])(image(), mode='tensor'),
         ValueError, OURS_CHECKS, r'RefineNetHead', r'in_index\[3\]=5',
         r'returned 4 feature maps', r'indices in 0\.\.3',
         r'backbone\.out_indices'),
    case('frrn-head-in-index-out-of-range',
         lambda _: frrn(in_index=1)(image(), mode='tensor'), ValueError,
         OURS_CHECKS, r'FRRNHead', r'in_index=1', r'returned 1 feature map',
         r'indices in 0\.\.0'),
    case('head-given-a-tensor-not-a-list',
         lambda _: small_head()(torch.zeros(1, 8, 8, 8)), TypeError,
         OURS_CHECKS, r'RefineNetHead',
         r'list of backbone feature maps', r'got a Tensor'),
    # -- a cascade naming a missing input
    case('cascade-names-missing-input',
         lambda _: small_head(cascade=((3, ), (2, ), (1, ), (4, ))),
         ValueError, OURS_HEAD, r'cascade\[3\] names input 4',
         r'head has 4 inputs', r'positions 0\.\.3'),
    # -- negative or zero widths, stages, K
    case('refinenet-channels-zero', lambda _: small_head(channels=0),
         ValueError, OURS_ARGS, r'RefineNetHead: channels',
         r'must be a positive integer', r'got 0'),
    case('refinenet-channels-negative', lambda _: small_head(channels=-8),
         ValueError, OURS_ARGS, r'RefineNetHead: channels',
         r'must be a positive integer', r'got -8'),
    case('refinenet-in-channels-negative',
         lambda _: small_head(in_channels=[8, 16, 32, -64]), ValueError,
         OURS_ARGS, r'RefineNetHead: in_channels\[3\]',
         r'must be a positive integer', r'got -64'),
    case('refinenet-adapt-channels-zero',
         lambda _: small_head(adapt_channels=[8, 8, 0, 16]), ValueError,
         OURS_ARGS, r'RefineNetHead: adapt_channels\[2\]',
         r'must be a positive integer'),
    case('refinenet-num-classes-zero', lambda _: small_head(num_classes=0),
         ValueError, OURS_ARGS, r'RefineNetHead: num_classes',
         r'must be a positive int', r'got 0'),
    case('refinenet-crp-stages-zero', lambda _: small_head(crp_stages=0),
         ValueError, OURS_BLOCKS, r'crp_stages=0',
         r'at least 1 stage', r'with_crp=False'),
    case('refinenet-crp-stages-negative',
         lambda _: small_head(crp_stages=-2), ValueError, OURS_BLOCKS,
         r'crp_stages=-2', r'positive integer'),
    case('refinenet-output-rcus-negative',
         lambda _: small_head(num_output_rcus=-1), ValueError, OURS_ARGS,
         r'num_output_rcus', r'integer >= 0', r'got -1'),
    case('frrn-stage-units-zero',
         lambda _: frrn_backbone(encoder=((0, 8), (1, 8), (1, 8))),
         ValueError, OURS_ARGS, r'FRRN: encoder\[0\] num_units',
         r'must be a positive int', r'got 0'),
    case('frrn-stage-channels-negative',
         lambda _: frrn_backbone(decoder=((1, 8), (1, -8))), ValueError,
         OURS_ARGS, r'FRRN: decoder\[1\] channels',
         r'must be a positive int', r'got -8'),
    case('frrn-base-channels-zero',
         lambda _: frrn_backbone(base_channels=0), ValueError,
         OURS_ARGS, r'FRRN: base_channels', r'positive int'),
    case('frrn-head-in-channels-zero',
         lambda _: MODELS.build(dict(type='FRRNHead', in_channels=0,
                                     num_classes=3)), ValueError,
         OURS_ARGS, r'FRRNHead: in_channels', r'must be a positive integer',
         r'got 0'),
    case('frrn-head-num-classes-negative',
         lambda _: MODELS.build(dict(type='FRRNHead', num_classes=-1)),
         ValueError, OURS_ARGS, r'FRRNHead: num_classes',
         r'positive int', r'got -1'),
    case('bootstrapped-ce-k-zero',
         lambda _: MODELS.build(dict(type='BootstrappedCrossEntropyLoss',
                                     k=0)), ValueError, OURS_ARGS,
         r'BootstrappedCrossEntropyLoss: k', r'positive int', r'got 0'),
    case('bootstrapped-ce-k-negative',
         lambda _: MODELS.build(dict(type='BootstrappedCrossEntropyLoss',
                                     k=-8192)), ValueError, OURS_ARGS,
         r'BootstrappedCrossEntropyLoss: k', r'positive int'),
    case('multiscale-scale-zero',
         lambda _: MODELS.build(dict(type='MultiScaleBackbone',
                                     backbone=dict(type='ResNetV1c',
                                                   depth=18),
                                     scales=(1.0, 0))), ValueError,
         OURS_MULTI, r'MultiScaleBackbone scales', r'positive factors'),
    # -- images with 1 or 4 channels where 3 are expected
    case('frrn-image-1-channel',
         lambda _: frrn_backbone()(image(channels=1)), ValueError,
         OURS_CHECKS, r'FRRN', r'1 channel', r'in_channels=3'),
    case('frrn-image-4-channels',
         lambda _: frrn()(image(channels=4), mode='tensor'), ValueError,
         OURS_CHECKS, r'FRRN', r'4 channels', r'in_channels=3'),
    case('frrn-baseline-image-4-channels',
         lambda _: frrn_backbone('FRRNResNetBaseline')(image(channels=4)),
         ValueError, OURS_CHECKS, r'FRRNResNetBaseline', r'4 channels',
         r'in_channels=3'),
    # MMSeg's ResNet has no check; its first convolution is the first
    # layer that sees the image, and PyTorch's message says what it expects.
    case('resnet-image-4-channels',
         lambda _: refinenet()(image(channels=4), mode='tensor'),
         RuntimeError, TORCH_CONV, r'expected input\[1, 4, 16, 16\]',
         r'to have 3 channels, but got 4'),
    case('preprocessor-image-4-channels',
         lambda _: MODELS.build(dict(type='SegDataPreProcessor',
                                     mean=[123.675, 116.28, 103.53],
                                     std=[58.395, 57.12, 57.375]))(
             dict(inputs=[torch.zeros(4, 16, 16, dtype=torch.uint8)])),
         ValueError, MMSEG_PREPROCESSOR, r'mean', r'3 channels',
         # the plugin owns no preprocessor: MMSeg's SegDataPreProcessor
         # subtracts its 3-channel mean from the 4-channel image
         gap=Gap(RuntimeError, MMSEG_PREPROCESSOR,
                 r'size of tensor a \(4\) must match the size of tensor b '
                 r'\(3\)', "MMSeg's SegDataPreProcessor (torch broadcast)")),
    # -- images smaller than the network's total stride
    case('frrn-image-smaller-than-stride',
         lambda _: frrn_backbone()(image(size=(4, 4))), ValueError,
         OURS_CHECKS, r'FRRN', r'input size 4x4', r'smaller than 8',
         fr'must be divisible by {FRRN_DIVISOR}',
         fr'size_divisor={FRRN_DIVISOR}'),
    # RefineNet takes any image size (no stride check: the head pads, see
    # test_refinenet_on_images_smaller_than_the_stride), but a training
    # batch of one 8x8 image, 1x1 from 1/8 on, leaves MMSeg ResNet's batch
    # norms a single value per channel; PyTorch's check says so.
    case('resnet-training-batch-of-one-1x1-feature',
         lambda _: refinenet().train()(image(size=(8, 8)), mode='tensor'),
         ValueError, TORCH_FUNCTIONAL,
         r'Expected more than 1 value per channel when training',
         re.escape('torch.Size([1, 16, 1, 1])')),
    # -- FRRN sizes not divisible by its pooling factor, called directly
    case('frrn-size-not-divisible',
         lambda _: frrn_backbone()(image(size=(12, 16))), ValueError,
         OURS_CHECKS, r'FRRN', r'input size 12x16', fr'divisible by '
         fr'{FRRN_DIVISOR}', fr'size_divisor={FRRN_DIVISOR}'),
    case('frrn-test-image-not-padded',
         lambda _: frrn_test_step(test_padding=False), ValueError,
         OURS_CHECKS, r'FRRN', r'input size 12x20',
         fr'divisible by {FRRN_DIVISOR}',
         fr'test_cfg=dict\(size_divisor={FRRN_DIVISOR}\)'),
    case('frrn-slide-window-not-divisible',
         lambda _: slide_predict(frrn_cfg(), crop_size=(12, 16),
                                 stride=(8, 8), size=(24, 24)), ValueError,
         OURS_CHECKS, r'FRRN', r'input size 12x16',
         fr'divisible by {FRRN_DIVISOR}', r"mode='slide'",
         fr'test_cfg\.crop_size multiples of {FRRN_DIVISOR}'),
    case('frrn-baseline-size-not-divisible',
         lambda _: frrn_backbone('FRRNResNetBaseline')(image(size=(16, 20))),
         ValueError, OURS_CHECKS, r'FRRNResNetBaseline',
         r'input size 16x20', fr'divisible by {FRRN_DIVISOR}'),
    # -- labels outside num_classes other than the ignore index
    case('refinenet-head-label-too-large',
         lambda _: head_loss(small_head(check_labels=True), 7), ValueError,
         OURS_CHECKS, r'RefineNetHead', r'\[7\]', r'ann_dir/train/0001\.png',
         r'num_classes=3', r'\[0, 2\]', r'ignore_index=255'),
    case('refinenet-head-label-between-classes-and-ignore',
         lambda _: head_loss(small_head(check_labels=True), 100),
         ValueError, OURS_CHECKS, r'\[100\]', r'num_classes=3',
         r'ignore_index=255'),
    case('frrn-head-label-negative',
         lambda _: head_loss(
             MODELS.build(dict(type='FRRNHead', in_channels=8,
                               num_classes=NUM_CLASSES,
                               check_labels=True)), -1),
         ValueError, OURS_CHECKS, r'FRRNHead', r'\[-1\]', r'num_classes=3',
         r'ignore_index=255'),
    case('bootstrapped-ce-label-too-large',
         lambda _: MODELS.build(dict(type='BootstrappedCrossEntropyLoss',
                                     k=16, check_labels=True))(
             torch.randn(2, NUM_CLASSES, 16, 16), labels_with(5)),
         ValueError, OURS_CHECKS, r'BootstrappedCrossEntropyLoss', r'\[5\]',
         r'num_classes=3', r'ignore_index=255'),
    # -- NaN or Inf in the input
    case('refinenet-nan-image',
         lambda _: refinenet(check_finite=True)(nan_image(), mode='tensor'),
         ValueError, OURS_CHECKS, r'RefineNetHead', r'NaN or Inf',
         r'in_index \[0, 1, 2, 3\]', r'images must be finite',
         r'check_finite=False'),
    case('frrn-inf-image',
         lambda _: frrn(backbone=dict(check_finite=True))(
             inf_image(), mode='tensor'), ValueError, OURS_CHECKS, r'FRRN:',
         r'NaN or Inf', r'images must be finite'),
    case('frrn-head-nan-features',
         lambda _: MODELS.build(dict(type='FRRNHead', in_channels=8,
                                     num_classes=3, check_finite=True))(
             [torch.full((1, 8, 4, 4), float('nan'))]), ValueError,
         OURS_CHECKS, r'FRRNHead', r'NaN or Inf', r'must be finite'),
    # -- an empty dataset folder, a missing folder, a wrong suffix
    *[
        case(f'{t}-empty-folder', empty_folder(t), FileNotFoundError,
             OURS_DATASET, t, r'img_dir/val', r'no images',
             re.escape(f'*{s}'), r'data_prefix')
        for t, s, _ in DATASET_TYPES
    ],
    case('dataset-missing-image-folder', missing_folder, FileNotFoundError,
         OURS_DATASET, r'CamVidDataset', r'image folder .*img_dir/trian',
         r'does not exist', r'data_root.*data_prefix'),
    case('dataset-missing-label-folder', missing_label_folder,
         FileNotFoundError, OURS_DATASET, r'label folder .*ann_dir/val',
         r'does not exist', r'seg_map_path'),
    case('dataset-wrong-image-suffix', wrong_suffix, FileNotFoundError,
         OURS_DATASET, r'no images', re.escape('*.png'),
         r'0000\.jpg', r'img_suffix'),
    # -- an image without its label file
    *[
        case(f'{t}-image-without-label', image_without_label(t, s),
             FileNotFoundError, OURS_DATASET, t, r'1 of 3 images',
             fr'0001{re.escape(s)}', r'ann_dir/train/0001\.png',
             r'label map of the same name')
        for t, s, _ in DATASET_TYPES
    ],
    case('dataset-ann-file-names-missing-image',
         image_without_label_ann_file, FileNotFoundError, OURS_DATASET,
         r'NYUDv2Dataset', r'1 of 3', r'img_dir/train/0002\.png',
         r'train\.txt'),
    # -- a truncated or corrupt image or label file
    case('dataset-truncated-image', corrupt_file('image', 'truncated'),
         OSError, OURS_DATASET, r'CamVidDataset', r'image file',
         r'img_dir/train/0001\.png', r'not a readable image',
         r're-convert'),
    case('dataset-corrupt-label', corrupt_file('label', 'garbage'), OSError,
         OURS_DATASET, r'label map file', r'ann_dir/train/0001\.png',
         r'not a readable image'),
    # -- a checkpoint of another model, a corrupt or missing one
    case('checkpoint-other-num-classes', other_num_classes,
         CheckpointMismatchError, OURS_STRICT, r'r18_5cls\.pth',
         r'2 keys have another shape',
         r'decode_head\.conv_seg\.weight: \(5, 8, 3, 3\) in the checkpoint, '
         r'\(3, 8, 3, 3\) in the model', r'must come from the same config'),
    case('checkpoint-other-model', other_model, CheckpointMismatchError,
         OURS_STRICT, r'frrn\.pth', r'keys are missing \(e\.g\. backbone\.',
         r'keys are not in the model', r'same config'),
    case('checkpoint-corrupt', corrupt_checkpoint, RuntimeError, OURS_CKPT,
         r'truncated\.pth', r'truncated, corrupt or not a torch checkpoint'),
    case('checkpoint-missing', missing_checkpoint, FileNotFoundError,
         OURS_CKPT, r'nope\.pth', r'does not exist'),
    case('checkpoint-running-code', checkpoint_running_code,
         UntrustedCheckpointError, OURS_CKPT, r'runs_code\.pth',
         r'before anything of it ran', r'global builtins\.print',
         r'--trust-checkpoint'),
    case('checkpoint-without-weights', not_a_state_dict,
         CheckpointMismatchError, OURS_STRICT, r'optimizer_only\.pth',
         r'not model weights', r"expected an MMEngine checkpoint"),
]


@pytest.mark.parametrize('trigger,exc_type,origin,patterns,gap', CASES)
def test_bad_input_fails_early_and_clearly(trigger, exc_type, origin,
                                           patterns, gap, tmp_path):
    with pytest.raises(Exception) as info:
        trigger(tmp_path)
    error = info.value
    message = str(error)
    raised_in = str(info.traceback[-1].path).replace(os.sep, '/')
    if gap is not None and gap.matches(error, raised_in):
        raise error  # the known gap: the row's strict xfail expects it
    assert type(error) is exc_type, f'{type(error).__name__}: {message}'
    assert raised_in.endswith(origin), (raised_in, message)
    for pattern in patterns:
        assert re.search(pattern, message, re.S), (pattern, message)


# ---- the good side of the same checks ---------------------------------------


def test_checks_pass_on_good_input():
    with torch.no_grad():
        checked = refinenet(check_finite=True)
        assert checked(image(), mode='tensor').shape == (1, NUM_CLASSES, 4,
                                                         4)
        checked = frrn(backbone=dict(check_finite=True), check_finite=True)
        assert checked(image(), mode='tensor').shape == (1, NUM_CLASSES, 16,
                                                         16)
    # labels in range and the ignore index pass
    losses = head_loss(small_head(check_labels=True), 255)
    assert torch.isfinite(losses['loss_ce'])


def test_value_checks_are_off_by_default():
    """A model built with the defaults makes none of the value checks, as
    MMSeg's models make none (each waits for the device at every step):
    NaN goes through to the logits, and a label outside the classes reaches
    PyTorch's cross-entropy, whose error names neither the value's file
    nor the allowed range. This is what the opt-in checks stop."""
    with torch.no_grad():
        assert torch.isnan(refinenet()(nan_image(), mode='tensor')).any()
        assert not torch.isfinite(frrn()(inf_image(), mode='tensor')).all()
    # FRRN's head and its bootstrapped loss both leave the labels alone
    head = MODELS.build(
        dict(type='FRRNHead', in_channels=8, num_classes=NUM_CLASSES,
             loss_decode=dict(type='BootstrappedCrossEntropyLoss', k=16)))
    with pytest.raises(IndexError) as info:
        head_loss(head, 7)
    raised_in = str(info.traceback[-1].path).replace(os.sep, '/')
    assert raised_in.endswith(TORCH_FUNCTIONAL), raised_in


def test_refinenet_on_images_smaller_than_the_stride():
    """Not an error in eval mode: padding keeps every level at least 1x1
    and the logits are resized to the image, as for MMSeg's own heads."""
    sample = SegDataSample()
    sample.set_metainfo(
        dict(
            ori_shape=(8, 8),
            img_shape=(8, 8),
            pad_shape=(8, 8),
            padding_size=[0, 0, 0, 0]))
    with torch.no_grad():
        result, = refinenet().predict(image(size=(8, 8)), [sample])
    assert result.pred_sem_seg.shape == (8, 8)
    assert result.seg_logits.data.shape == (NUM_CLASSES, 8, 8)
    assert torch.isfinite(result.seg_logits.data).all()
    # nor in training, given two values per channel for the batch norms
    losses = refinenet().train().loss(
        image(size=(8, 8), n=2), samples(labels_with(1, size=(8, 8))))
    assert torch.isfinite(losses['decode.loss_ce'])


@pytest.mark.parametrize('channels,mode', [(1, 'L'), (4, 'RGBA')])
def test_dataset_images_with_1_or_4_channels_load_as_3(tmp_path, channels,
                                                       mode):
    """LoadImageFromFile (color_type='color') converts grey and RGBA files
    to 3 channels, so the dataset path needs no check of its own."""
    write_folder(str(tmp_path))
    pixels = np.full((16, 16, channels), 90, dtype=np.uint8).squeeze()
    Image.fromarray(pixels, mode).save(tmp_path / 'img_dir' / 'train' /
                                       '0001.png')
    sample = build_dataset('CamVidDataset', tmp_path)[1]
    assert sample['inputs'].shape == (3, 16, 16)


def test_dataset_without_label_folder_is_fine_for_inference(tmp_path):
    write_folder(str(tmp_path))
    dataset = DATASETS.build(
        dict(
            type='CamVidDataset',
            data_root=str(tmp_path),
            data_prefix=dict(img_path='img_dir/train'),
            pipeline=[dict(type='LoadImageFromFile')]))
    assert len(dataset) == 2
    assert dataset[1]['img'].shape == (16, 16, 3)


def test_load_checkpoint_strict_loads_full_bare_and_ddp_checkpoints(
        tmp_path):
    source = refinenet()
    for name, prefix in (('full.pth', ''), ('ddp.pth', 'module.')):
        path = checkpoint_of(source, tmp_path, name, prefix)
        target = refinenet()
        checkpoint = load_checkpoint_strict(target, path)
        assert checkpoint['meta']['iter'] == 1
        for k, v in source.state_dict().items():
            assert torch.equal(v, target.state_dict()[k]), (name, k)
    bare = tmp_path / 'bare.pth'
    torch.save(source.state_dict(), bare)
    target = refinenet()
    assert set(load_checkpoint_strict(target, str(bare))) == {'state_dict'}
    assert torch.equal(target.decode_head.conv_seg.weight,
                       source.decode_head.conv_seg.weight)


def test_checks_are_left_out_of_traced_graphs():
    """Tracing (ONNX export, torch.jit.trace) sees no data-dependent
    branch: the finiteness checks, switched on here, are skipped while
    tracing."""

    class Logits(torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.model = frrn(backbone=dict(check_finite=True),
                              check_finite=True)

        def forward(self, x):
            return self.model(x, mode='tensor')

    with torch.no_grad():
        traced = torch.jit.trace(Logits().eval(), image(), check_trace=False)
        assert torch.isnan(traced(nan_image())).any()


def test_checks_are_left_out_of_compiled_graphs():
    """Under torch.compile the value checks, switched on here, are skipped
    on every supported torch (the NaN reaches the logits instead of a
    data-dependent branch breaking the graph)."""
    model = frrn(backbone=dict(check_finite=True), check_finite=True)
    compiled = torch.compile(
        lambda x: model(x, mode='tensor'), backend='eager', fullgraph=True)
    with torch.no_grad():
        assert torch.isnan(compiled(nan_image())).any()


def test_sliding_window_inference_with_good_windows():
    """The good side of ``frrn-slide-window-not-divisible``: with windows
    whose sides are multiples of FRRN's divisor (and for RefineNet, which
    takes any size, windows of any size), MMSeg's sliding-window inference
    gives full-size, finite logits. The window overlap makes
    ``slide_inference`` average; a 24x24 image with 16x16 windows at stride
    8 is cut into 4 overlapping windows."""
    result, = slide_predict(frrn_cfg(), crop_size=(16, 16), stride=(8, 8),
                            size=(24, 24))
    assert result.seg_logits.data.shape == (NUM_CLASSES, 24, 24)
    assert torch.isfinite(result.seg_logits.data).all()
    result, = slide_predict(refinenet_cfg(), crop_size=(13, 17),
                            stride=(7, 9), size=(24, 30))
    assert result.seg_logits.data.shape == (NUM_CLASSES, 24, 30)
    assert torch.isfinite(result.seg_logits.data).all()


def test_frrn_test_step_pads_with_the_preprocessors_test_cfg():
    """The good side of ``frrn-test-image-not-padded``: the same image goes
    through ``test_step`` once the preprocessor's ``test_cfg`` pads it, and
    the prediction is cropped back to the image's size."""
    result, = frrn_test_step(test_padding=True)
    assert result.pred_sem_seg.shape == (12, 20)
