# Light-Weight RefineNet-50 starting from the released NYUDv2 weights of
# DrSleep/light-weight-refinenet (rf_lw50, 40 classes), converted with
#   python tools/model_converters/refinenet2mmseg.py rf_lw50_nyu.pth \
#       checkpoints/released/lw-refinenet_r50_nyudv2-40.pth
# Testing with this config runs the released model as its authors
# evaluated it (the 654 test images at their own size, single scale, RGB
# only); training fine-tunes it (10k iterations, lr 1e-3). Architecture as
# released: torchvision ResNet layout, align_corners=True, ImageNet
# mean/std on RGB. The release's classes are the 40 of Gupta et al. in the
# order of NYUDv2Dataset. The release's NYUDv2 images had their white
# borders cropped; MMSeg's layout keeps them.
_base_ = [
    '../_base_/models/lw_refinenet_r50.py',
    '../_base_/datasets/nyudv2_40.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_20k.py'
]
crop_size = (480, 480)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor,
             backbone=dict(depth=50, init_cfg=None),
             decode_head=dict(num_classes=40, align_corners=True))
load_from = 'checkpoints/released/lw-refinenet_r50_nyudv2-40.pth'
train_dataloader = dict(batch_size=4)

optimizer = dict(lr=1e-3)
optim_wrapper = dict(optimizer=optimizer)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=10000,
         by_epoch=False)
]
train_cfg = dict(max_iters=10000, val_interval=1000)
default_hooks = dict(checkpoint=dict(interval=1000))

# evaluated as released: at the images' own size (640x480), single scale
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
