# The shared training set-up of configs/camvid/: CamVid (11 classes, 360x480
# crops, RefineNet's random scale 0.7-1.3 + crop + flip, see
# ../datasets/camvid.py), MMSeg's default runtime, batch 8 on one GPU, 20k
# iterations, every model trained from scratch. It includes the dataset and
# the runtime so that the configs of configs/camvid/ differ only in the
# model; it has no custom_imports (FRRN's model bases carry it; every
# config of configs/camvid/ sets it).
_base_ = [
    '../datasets/camvid.py', 'mmseg::_base_/default_runtime.py'
]
train_dataloader = dict(batch_size=8, num_workers=4)
val_dataloader = dict(batch_size=1, num_workers=4)
test_dataloader = dict(batch_size=1, num_workers=4)

# From scratch: AdamW (lr 1e-3, decoupled weight decay 0.01), 500 linear
# warm-up iterations, then poly decay to 1e-6 at 20k.
max_iters = 20000
optimizer = dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
param_scheduler = [
    dict(type='LinearLR',
         start_factor=1e-3,
         by_epoch=False,
         begin=0,
         end=500),
    dict(type='PolyLR',
         power=0.9,
         eta_min=1e-6,
         by_epoch=False,
         begin=500,
         end=max_iters)
]
# Validation and a checkpoint every 1000 iterations, so that a run split
# into short jobs resumes with `tools/train.py CONFIG --resume` losing at
# most 1000 iterations; the best val mIoU is kept as well.
train_cfg = dict(type='IterBasedTrainLoop',
                 max_iters=max_iters,
                 val_interval=1000)
val_cfg = dict(type='ValLoop')
# Testing adds FRRN's trimap curve (Pohlen et al., Sec. 5.3 / Fig. 7: the
# mIoU within r pixels of a label boundary) with per-class IoUs. r = 600 is
# the diagonal of a 360x480 CamVid image: its band is the whole image, so
# its per-class IoUs are IoUMetric's (which only logs them), as numbers in
# the metrics JSON. Validation during training stays the plain mIoU.
test_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(type='TrimapIoUMetric',
         radii=(1, 2, 4, 8, 16, 32, 64, 80, 600),
         per_class=True)
]
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='AtomicCheckpointHook',
                    by_epoch=False,
                    interval=1000,
                    max_keep_ckpts=2,
                    save_last=True,
                    save_best='mIoU',
                    rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
