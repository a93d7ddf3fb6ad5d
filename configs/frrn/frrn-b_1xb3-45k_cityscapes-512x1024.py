# FRRN B on Cityscapes at half resolution (whole images resized to
# 1024x512), trained from scratch (Sec. 4 of Pohlen et al., CVPR 2017):
# batch 3, Adam, bootstrapped cross-entropy with K = 32768 pixels per image
# (as the official train_frrn_b.py), random translation (reflection
# padding) and gamma augmentation as in the paper; lr 1e-3 for 35k
# iterations and 1e-4 for 10k more (the official code steps after 45k;
# configs/frrn/README.md, "Differences").
# For evaluation the prediction is upsampled bilinearly to the full
# 1024x2048 labels (EncoderDecoder.postprocess_result resizes the logits to
# ori_shape).
_base_ = [
    '../_base_/models/frrn_b.py', 'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmseg_refinenet'], allow_failed_imports=False)

scale = (1024, 512)  # (w, h) of the network input
model = dict(decode_head=dict(loss_decode=dict(k=32768)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=scale, keep_ratio=False),
    dict(type='RandomTranslate', offset=20, seg_pad_val=255),
    dict(type='RandomGamma', a=0.05),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=False),
    # labels are loaded after Resize: evaluation at full resolution
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=3, num_workers=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# Multi-scale + flip testing (tools/test.py --tta): the network input of
# test_pipeline scaled by each ratio and flipped, labels at full resolution.
# Not MMSeg's Cityscapes tta_pipeline, which scales the full 1024x2048
# image (an FRRN would then see 2 to 7 times its training resolution).
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(type='Resize',
                     scale=(int(scale[0] * r), int(scale[1] * r)),
                     keep_ratio=False) for r in img_ratios
            ],
            [
                dict(type='RandomFlip', prob=0., direction='horizontal'),
                dict(type='RandomFlip', prob=1., direction='horizontal')
            ], [dict(type='LoadAnnotations')], [dict(type='PackSegInputs')]
        ])
]

# Adam, lr 1e-3, divided by 10 after 35k of 45k iterations
optimizer = dict(type='Adam', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
param_scheduler = [
    dict(
        type='MultiStepLR',
        milestones=[35000],
        gamma=0.1,
        begin=0,
        end=45000,
        by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=45000, val_interval=5000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='AtomicCheckpointHook', by_epoch=False, interval=5000),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
