# The quick start's main job: a small 4-cascaded RefineNet on ResNet-18,
# trained from scratch on the generated dataset of
# mmseg_refinenet.datasets.synthetic (4 classes, 64x64 images) on the CPU.
# tools/quickstart.py generates the data under `data_root` and runs this.
_base_ = ['../_base_/default_runtime.py']

data_root = 'data/synthetic'
metainfo = dict(classes=('background', 'disc', 'box', 'bar'),
                palette=[[0, 0, 0], [220, 20, 60], [0, 142, 70],
                         [250, 170, 30]])
crop_size = (64, 64)
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(type='EncoderDecoder',
             data_preprocessor=dict(type='SegDataPreProcessor',
                                    mean=[123.675, 116.28, 103.53],
                                    std=[58.395, 57.12, 57.375],
                                    bgr_to_rgb=True,
                                    pad_val=0,
                                    seg_pad_val=255,
                                    size=crop_size),
             backbone=dict(type='ResNet',
                           depth=18,
                           out_indices=(0, 1, 2, 3),
                           norm_cfg=norm_cfg,
                           style='pytorch'),
             decode_head=dict(type='RefineNetHead',
                              in_channels=[64, 128, 256, 512],
                              in_index=[0, 1, 2, 3],
                              channels=32,
                              adapt_channels=[32, 32, 32, 64],
                              crp_stages=2,
                              dropout_ratio=0.1,
                              num_classes=4,
                              norm_cfg=None,
                              loss_decode=dict(type='CrossEntropyLoss',
                                               use_sigmoid=False,
                                               loss_weight=1.0)),
             train_cfg=dict(),
             test_cfg=dict(mode='whole'))

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
dataset = dict(type='BaseSegDataset',
               data_root=data_root,
               metainfo=metainfo,
               img_suffix='.png',
               seg_map_suffix='.png')
train_dataloader = dict(batch_size=8,
                        num_workers=0,
                        sampler=dict(type='InfiniteSampler', shuffle=True),
                        dataset=dict(**dataset,
                                     data_prefix=dict(
                                         img_path='img_dir/train',
                                         seg_map_path='ann_dir/train'),
                                     pipeline=train_pipeline))
val_dataloader = dict(batch_size=1,
                      num_workers=0,
                      sampler=dict(type='DefaultSampler', shuffle=False),
                      dataset=dict(**dataset,
                                   data_prefix=dict(
                                       img_path='img_dir/val',
                                       seg_map_path='ann_dir/val'),
                                   pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4))
param_scheduler = [
    dict(type='PolyLR',
         power=0.9,
         eta_min=1e-5,
         begin=0,
         end=300,
         by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=300, val_interval=300)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(timer=dict(type='IterTimerHook'),
                     logger=dict(type='LoggerHook',
                                 interval=25,
                                 log_metric_by_epoch=False),
                     param_scheduler=dict(type='ParamSchedulerHook'),
                     checkpoint=dict(type='AtomicCheckpointHook',
                                     by_epoch=False,
                                     interval=300),
                     sampler_seed=dict(type='DistSamplerSeedHook'),
                     visualization=dict(type='SegVisualizationHook'))
env_cfg = dict(cudnn_benchmark=False,
               mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
