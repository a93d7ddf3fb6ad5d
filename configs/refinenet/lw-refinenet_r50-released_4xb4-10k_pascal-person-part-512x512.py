# Light-Weight RefineNet-50 starting from the released PASCAL-Person-Part
# weights of DrSleep/light-weight-refinenet (rf_lw50, 7 classes), converted
# with
#   python tools/model_converters/refinenet2mmseg.py rf_lw50_person.pth \
#       checkpoints/released/lw-refinenet_r50_pascal-person-part.pth
# Testing with this config runs the released model as its authors
# evaluated it (the test images at their own size, single scale); training
# fine-tunes it (10k iterations, lr 1e-3). Architecture as released:
# torchvision ResNet layout, align_corners=True, ImageNet mean/std on RGB.
# The release's classes (background, head, torso, upper arms, lower arms,
# upper legs, lower legs) are in the order of PascalPersonPartDataset.
_base_ = [
    '../_base_/models/lw_refinenet_r50.py',
    '../_base_/datasets/pascal_person_part.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_20k.py'
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor,
             backbone=dict(depth=50, init_cfg=None),
             decode_head=dict(num_classes=7, align_corners=True))
load_from = 'checkpoints/released/lw-refinenet_r50_pascal-person-part.pth'
train_dataloader = dict(batch_size=4)

optimizer = dict(lr=1e-3)
optim_wrapper = dict(optimizer=optimizer)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=10000,
         by_epoch=False)
]
train_cfg = dict(max_iters=10000, val_interval=1000)
default_hooks = dict(checkpoint=dict(interval=1000))

# evaluated as released: at the images' own size, single scale, not resized
# to 512x512 as the from-scratch configs do
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
