"""Smoke training on real data: RefineNet and FRRN on a CamVid subset.

Each test trains a small model from scratch with MMEngine's Runner, as a
user would (a config dict, ``CamVidDataset``, ``IterBasedTrainLoop``), on
a fixed subset of the CamVid training split, downscaled to 96x128 so that a
run takes about a minute on 2 CPU cores. It then checks that

* the training loss falls clearly: the mean over the last 10% of the
  iterations is below ``LOSS_RATIO`` times the loss of the first
  iteration, the untrained model's (about ln 11 = 2.4; read from the
  Runner's message hub, which records the loss of every iteration);
* the model has learnt more than the class prior: its mIoU on the same
  training images (the Runner's test loop with mmseg's ``IoUMetric``, void
  ignored) beats predicting the majority class everywhere, computed on the
  same images, by at least ``MIOU_MARGIN`` points.

The subset is built with ``tools/dataset_converters/camvid.py`` in a
temporary folder (from links to the shared copy, never a copy of the
dataset in the repository). Skipped, saying why, when CamVid is absent
(see the ``camvid_root`` fixture in ``conftest.py``).
"""
import os
import os.path as osp
import time

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.runner import Runner

import mmseg_refinenet  # noqa: F401  (registers the plugin's modules)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONVERTER = osp.join(REPO, 'tools', 'dataset_converters', 'camvid.py')

NUM_TRAIN = 32  # training images, evenly spaced over train.txt
SIZE = (96, 128)  # (h, w): 360x480 / 3.75; divisible by 32
IGNORE_INDEX = 255
NUM_CLASSES = 11
BATCH_SIZE = 4
LOSS_RATIO = 0.6
MIOU_MARGIN = 10.  # points of mIoU (in %) above the majority class

NORM_CFG = dict(type='BN', requires_grad=True)
DATA_PREPROCESSOR = dict(type='SegDataPreProcessor',
                         mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375],
                         bgr_to_rgb=True,
                         pad_val=0,
                         seg_pad_val=IGNORE_INDEX,
                         size_divisor=32,
                         test_cfg=dict(size_divisor=32))
CE_LOSS = dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)

# A 4-cascaded RefineNet on ResNet-18, the widths of the quick start.
REFINENET_R18 = dict(type='EncoderDecoder',
                     data_preprocessor=DATA_PREPROCESSOR,
                     backbone=dict(type='ResNet',
                                   depth=18,
                                   out_indices=(0, 1, 2, 3),
                                   norm_cfg=NORM_CFG,
                                   style='pytorch'),
                     decode_head=dict(type='RefineNetHead',
                                      in_channels=[64, 128, 256, 512],
                                      in_index=[0, 1, 2, 3],
                                      channels=32,
                                      adapt_channels=[32, 32, 32, 64],
                                      crp_stages=2,
                                      dropout_ratio=0.1,
                                      num_classes=NUM_CLASSES,
                                      norm_cfg=None,
                                      loss_decode=CE_LOSS),
                     train_cfg=dict(),
                     test_cfg=dict(mode='whole'))

# FRRN with 3 pooling stages (factor 8) and narrow streams.
FRRN_SMALL = dict(type='EncoderDecoder',
                  data_preprocessor=DATA_PREPROCESSOR,
                  backbone=dict(type='FRRN',
                                arch=None,
                                encoder=((1, 24), (1, 48), (1, 96)),
                                decoder=((1, 48), (1, 24)),
                                base_channels=16,
                                residual_channels=8,
                                num_stem_units=1,
                                norm_cfg=NORM_CFG),
                  decode_head=dict(type='FRRNHead',
                                   in_channels=16,
                                   channels=16,
                                   num_classes=NUM_CLASSES,
                                   dropout_ratio=0.,
                                   loss_decode=CE_LOSS),
                  train_cfg=dict(),
                  test_cfg=dict(mode='whole'))


def _link_subset(src, dst, stems):
    """A SegNet-layout CamVid folder holding ``stems`` (links, no copies).

    ``stems`` maps each split to its file stems.
    """
    for split, names in stems.items():
        os.makedirs(osp.join(dst, split))
        os.makedirs(osp.join(dst, split + 'annot'))
        for stem in names:
            for folder in (split, split + 'annot'):
                os.symlink(osp.join(src, folder, stem + '.png'),
                           osp.join(dst, folder, stem + '.png'))
        with open(osp.join(dst, split + '.txt'), 'w') as f:
            f.write('\n'.join(names) + '\n')


def _read_stems(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


@pytest.fixture(scope='module')
def camvid_subset(camvid_root, tmp_path_factory, load_script):
    """``NUM_TRAIN`` CamVid training images in MMSeg's layout at 96x128.

    Returns:
        str: ``data_root`` with ``img_dir/train`` and ``ann_dir/train``
        (labels 0..10, void 255).
    """
    tmp = tmp_path_factory.mktemp('camvid')
    train = _read_stems(osp.join(camvid_root, 'train.txt'))
    step = len(train) / NUM_TRAIN
    stems = dict(train=[train[int(i * step)] for i in range(NUM_TRAIN)])
    # the converter wants every split; one image each is enough here
    for split in ('val', 'test'):
        stems[split] = _read_stems(osp.join(camvid_root,
                                            split + '.txt'))[:1]
    _link_subset(camvid_root, str(tmp / 'segnet'), stems)
    data_root = str(tmp / 'camvid')
    counts = load_script(CONVERTER).convert_camvid(str(tmp / 'segnet'),
                                                   data_root)
    assert counts['train'] == NUM_TRAIN
    # downscale in place: area for images, nearest for labels
    h, w = SIZE
    for name in os.listdir(osp.join(data_root, 'img_dir', 'train')):
        img_file = osp.join(data_root, 'img_dir', 'train', name)
        ann_file = osp.join(data_root, 'ann_dir', 'train', name)
        img = cv2.imread(img_file, cv2.IMREAD_COLOR)
        ann = cv2.imread(ann_file, cv2.IMREAD_UNCHANGED)
        assert ann.ndim == 2 and ann.max() <= IGNORE_INDEX
        cv2.imwrite(img_file,
                    cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA))
        cv2.imwrite(ann_file,
                    cv2.resize(ann, (w, h), interpolation=cv2.INTER_NEAREST))
    return data_root


def majority_class_miou(data_root):
    """mIoU (%) of predicting the most frequent class at every pixel.

    As mmseg's ``IoUMetric`` computes it: classes absent from both the
    ground truth and the prediction (IoU 0/0) are left out of the mean.
    The majority class ``c`` has IoU = (pixels of c) / (valid pixels); every
    other class present in the ground truth has IoU 0.
    """
    ann_dir = osp.join(data_root, 'ann_dir', 'train')
    counts = np.zeros(IGNORE_INDEX + 1, dtype=np.int64)
    for name in sorted(os.listdir(ann_dir)):
        ann = cv2.imread(osp.join(ann_dir, name), cv2.IMREAD_UNCHANGED)
        counts += np.bincount(ann.ravel(), minlength=IGNORE_INDEX + 1)
    counts = counts[:NUM_CLASSES]
    majority = int(counts.argmax())
    ious = np.full(NUM_CLASSES, np.nan)
    ious[counts > 0] = 0.
    ious[majority] = counts[majority] / counts.sum()
    return 100. * float(np.nanmean(ious)), majority


def runner_config(model, data_root, work_dir, max_iters, lr, log_interval):
    """A complete Runner config: train on the subset, test on the same."""
    dataset = dict(type='CamVidDataset',
                   data_root=data_root,
                   data_prefix=dict(img_path='img_dir/train',
                                    seg_map_path='ann_dir/train'))
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackSegInputs')
    ]
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='PackSegInputs')
    ]
    return Config(
        dict(default_scope='mmseg',
             work_dir=work_dir,
             model=model,
             train_dataloader=dict(batch_size=BATCH_SIZE,
                                   num_workers=0,
                                   sampler=dict(type='InfiniteSampler',
                                                shuffle=True),
                                   dataset=dict(**dataset,
                                                pipeline=train_pipeline)),
             test_dataloader=dict(batch_size=8,
                                  num_workers=0,
                                  sampler=dict(type='DefaultSampler',
                                               shuffle=False),
                                  dataset=dict(**dataset,
                                               pipeline=test_pipeline)),
             test_evaluator=dict(type='IoUMetric', iou_metrics=['mIoU']),
             optim_wrapper=dict(type='OptimWrapper',
                                optimizer=dict(type='AdamW',
                                               lr=lr,
                                               weight_decay=1e-4)),
             param_scheduler=[
                 dict(type='PolyLR',
                      power=0.9,
                      eta_min=lr * 1e-2,
                      begin=0,
                      end=max_iters,
                      by_epoch=False)
             ],
             train_cfg=dict(type='IterBasedTrainLoop',
                            max_iters=max_iters,
                            val_interval=max_iters + 1),
             test_cfg=dict(type='TestLoop'),
             default_hooks=dict(timer=dict(type='IterTimerHook'),
                                logger=dict(type='LoggerHook',
                                            interval=log_interval,
                                            log_metric_by_epoch=False),
                                param_scheduler=dict(
                                    type='ParamSchedulerHook'),
                                checkpoint=None),
             log_processor=dict(by_epoch=False),
             env_cfg=dict(cudnn_benchmark=False,
                          dist_cfg=dict(backend='gloo')),
             randomness=dict(seed=0),
             log_level='WARNING'))


def train_and_check(model, data_root, work_dir, max_iters, lr):
    runner = Runner.from_cfg(
        runner_config(model, data_root, str(work_dir), max_iters, lr,
                      log_interval=max(1, max_iters // 20)))
    start = time.perf_counter()
    runner.train()
    train_s = time.perf_counter() - start
    # the loss of every iteration, as recorded by RuntimeInfoHook
    losses = np.asarray(runner.message_hub.get_scalar('train/loss').data[0])
    assert len(losses) == max_iters
    metrics = runner.test()
    miou = float(metrics['mIoU'])
    majority_miou, majority = majority_class_miou(data_root)
    first = float(losses[0])
    last = float(losses[-max(1, max_iters // 10):].mean())
    print(f'\n{model["backbone"]["type"]}: {max_iters} iterations in '
          f'{train_s:.1f} s; loss {first:.3f} (first) -> {last:.3f} '
          f'(last 10%, max {losses.max():.3f}); train-subset mIoU '
          f'{miou:.2f} vs {majority_miou:.2f} for the majority class '
          f'({majority})')
    assert np.isfinite(losses).all()
    assert last < LOSS_RATIO * first, (first, last)
    assert miou > majority_miou + MIOU_MARGIN, (miou, majority_miou)


@pytest.mark.camvid
def test_refinenet_r18_camvid_smoke(camvid_subset, tmp_path):
    train_and_check(REFINENET_R18, camvid_subset, tmp_path, max_iters=120,
                    lr=2e-3)


@pytest.mark.camvid
def test_frrn_camvid_smoke(camvid_subset, tmp_path):
    train_and_check(FRRN_SMALL, camvid_subset, tmp_path, max_iters=120,
                    lr=2e-3)
