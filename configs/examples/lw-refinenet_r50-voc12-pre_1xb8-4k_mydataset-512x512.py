# Fine-tuning on your own data: Light-Weight RefineNet-50, starting from the
# released PASCAL VOC weights (21 classes), on a dataset of 5 classes in
# MMSeg's folder layout:
#
#   data/my_dataset/img_dir/{train,val}/NAME.jpg   the images
#   data/my_dataset/ann_dir/{train,val}/NAME.png   their label maps
#
# Each label map is a single-channel PNG holding the class index of every
# pixel (0 .. num_classes - 1; 255 is ignored). See README.md, "Fine-tuning
# on your own data".
#
# Outside this repository, copy this file and give the base as an absolute
# path: MMEngine refuses a `mmseg_refinenet::` scope (it knows only the
# OpenMMLab packages), so a plugin config is inherited by file path, e.g.
#   _base_ = ['/path/to/mmseg-refinenet/configs/refinenet/'
#             'lw-refinenet_r50-released_4xb4-20k_voc12aug-512x512.py']
# The base sets the architecture as released and the optimizer (SGD); what
# follows replaces the classes, the data and the schedule.
_base_ = [
    '../refinenet/lw-refinenet_r50-released_4xb4-20k_voc12aug-512x512.py'
]

# The weights to start from: converted from the released rf_lw50_voc.pth by
#   python tools/model_converters/refinenet2mmseg.py rf_lw50_voc.pth \
#       checkpoints/released/lw-refinenet_r50_voc12.pth
# (relative to the folder training starts in; or any MMEngine checkpoint of
# this architecture, e.g. one of your own runs). Every layer whose name and
# shape match is loaded; the classifier (decode_head.conv_seg), which has
# 21 outputs there and 5 here, keeps its random initialisation; MMEngine
# logs it as a size mismatch.
load_from = 'checkpoints/released/lw-refinenet_r50_voc12.pth'

# Your classes, in the order of the label values, and a colour for each.
classes = ('background', 'road', 'building', 'vegetation', 'vehicle')
palette = [[0, 0, 0], [128, 64, 128], [70, 70, 70], [107, 142, 35],
           [0, 0, 142]]
# every head's classifier: decode_head, and auxiliary_head where a base
# model has one
model = dict(decode_head=dict(num_classes=len(classes)))

# Where the data is. Change it here, or on the command line for each
# dataloader (a variable such as data_root is substituted when the file is
# read, so overriding `data_root` itself changes nothing):
#   --cfg-options train_dataloader.dataset.data_root=/data/mine \
#       val_dataloader.dataset.data_root=/data/mine \
#       test_dataloader.dataset.data_root=/data/mine
data_root = 'data/my_dataset'
dataset = dict(
    type='BaseSegDataset',
    data_root=data_root,
    metainfo=dict(classes=classes, palette=palette),
    img_suffix='.jpg',
    seg_map_suffix='.png',
    # True when label 0 means "unlabelled": it becomes 255 (ignored) and
    # every other label moves down by one
    reduce_zero_label=False)

crop_size = (512, 512)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize',
         scale=(2048, 512),
         ratio_range=(0.5, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
# `_delete_=True`: the base's VOC dataset (a ConcatDataset of two lists) is
# replaced as a whole, not merged key by key
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    dataset=dict(_delete_=True,
                 **dataset,
                 data_prefix=dict(img_path='img_dir/train',
                                  seg_map_path='ann_dir/train'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(_delete_=True,
                 **dataset,
                 data_prefix=dict(img_path='img_dir/val',
                                  seg_map_path='ann_dir/val'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader

# 1 GPU x 8 images, 4k iterations from the released weights
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=4000,
         by_epoch=False)
]
train_cfg = dict(max_iters=4000, val_interval=500)
default_hooks = dict(checkpoint=dict(interval=500, max_keep_ckpts=2,
                                     save_best='mIoU', rule='greater'))
