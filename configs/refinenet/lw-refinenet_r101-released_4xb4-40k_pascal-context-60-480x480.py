# Light-Weight RefineNet-101 starting from the released PASCAL-Context
# weights of DrSleep/light-weight-refinenet (rf_lw101, 60 classes),
# converted with
#   python tools/model_converters/refinenet2mmseg.py rf_lw101_context.pth \
#       checkpoints/released/lw-refinenet_r101_pascal-context-60.pth
# Testing with this config runs the released model as its authors
# evaluated it (the val images at their own size, single scale); training
# fine-tunes it (40k iterations, lr 1e-3). Architecture as released:
# torchvision ResNet layout, align_corners=True, ImageNet mean/std on RGB.
# The release orders its 60 classes as VOC (background, the 20 VOC classes
# in VOC's order, then the other 39), not alphabetically as
# PascalContextDataset does: the datasets below list the classes in the
# release's order, so that MMSeg maps every label to the release's index
# (the dataset's label_map) and the converted classifier needs no change.
_base_ = [
    '../_base_/models/lw_refinenet_r50.py',
    '../_base_/datasets/pascal_context.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_80k.py'
]
crop_size = (480, 480)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor,
             backbone=dict(depth=101, init_cfg=None),
             decode_head=dict(num_classes=60, align_corners=True))
load_from = 'checkpoints/released/lw-refinenet_r101_pascal-context-60.pth'

released_classes = (
    'background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus',
    'car', 'cat', 'chair', 'cow', 'table', 'dog', 'horse', 'motorbike',
    'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor', 'bag',
    'bed', 'bench', 'book', 'building', 'cabinet', 'ceiling', 'cloth',
    'computer', 'cup', 'door', 'fence', 'floor', 'flower', 'food', 'grass',
    'ground', 'keyboard', 'light', 'mountain', 'mouse', 'curtain', 'platform',
    'sign', 'plate', 'road', 'rock', 'shelves', 'sidewalk', 'sky', 'snow',
    'bedclothes', 'track', 'tree', 'truck', 'wall', 'water', 'window', 'wood')
train_dataloader = dict(batch_size=4,
                        dataset=dict(metainfo=dict(classes=released_classes)))

optimizer = dict(lr=1e-3)
optim_wrapper = dict(optimizer=optimizer)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=40000,
         by_epoch=False)
]
train_cfg = dict(max_iters=40000, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000))

# evaluated as released: at the images' own size, single scale, not resized
# to 520x520 as the from-scratch configs do
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline,
                                   metainfo=dict(classes=released_classes)))
test_dataloader = val_dataloader
