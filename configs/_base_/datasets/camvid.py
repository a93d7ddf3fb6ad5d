# CamVid, 11 classes + void (ignored), the SegNet split (367 train / 101 val /
# 233 test at 360x480), converted by tools/dataset_converters/camvid.py into
# data/camvid/{img_dir,ann_dir}/{train,val,test}. Model selection on val;
# test_dataloader reports on the test split.
dataset_type = 'CamVidDataset'
data_root = 'data/camvid'
crop_size = (360, 480)
# RefineNet's recipe (Sec. 4): random scaling 0.7-1.3, random crop, flip.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize',
         scale=(480, 360),
         ratio_range=(0.7, 1.3),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(480, 360), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
# multi-scale + flip testing through MMSeg's TTA (tools/test.py --tta)
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='TestTimeAug',
         transforms=[[
             dict(type='Resize', scale_factor=r, keep_ratio=True)
             for r in img_ratios
         ],
                     [
                         dict(type='RandomFlip',
                              prob=0.,
                              direction='horizontal'),
                         dict(type='RandomFlip',
                              prob=1.,
                              direction='horizontal')
                     ], [dict(type='LoadAnnotations')],
                     [dict(type='PackSegInputs')]])
]
train_dataloader = dict(batch_size=4,
                        num_workers=4,
                        persistent_workers=True,
                        sampler=dict(type='InfiniteSampler', shuffle=True),
                        dataset=dict(type=dataset_type,
                                     data_root=data_root,
                                     data_prefix=dict(
                                         img_path='img_dir/train',
                                         seg_map_path='ann_dir/train'),
                                     pipeline=train_pipeline))
val_dataloader = dict(batch_size=1,
                      num_workers=4,
                      persistent_workers=True,
                      sampler=dict(type='DefaultSampler', shuffle=False),
                      dataset=dict(type=dataset_type,
                                   data_root=data_root,
                                   data_prefix=dict(
                                       img_path='img_dir/val',
                                       seg_map_path='ann_dir/val'),
                                   pipeline=test_pipeline))
test_dataloader = dict(batch_size=1,
                       num_workers=4,
                       persistent_workers=True,
                       sampler=dict(type='DefaultSampler', shuffle=False),
                       dataset=dict(type=dataset_type,
                                    data_root=data_root,
                                    data_prefix=dict(
                                        img_path='img_dir/test',
                                        seg_map_path='ann_dir/test'),
                                    pipeline=test_pipeline))
# pixel accuracy (aAcc), mean accuracy (mAcc) and mean IoU, as the papers
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
