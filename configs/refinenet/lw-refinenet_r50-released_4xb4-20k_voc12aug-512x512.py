# Light-Weight RefineNet-50 starting from the released PASCAL VOC weights of
# DrSleep/light-weight-refinenet (rf_lw50, 21 classes), converted with
#   python tools/model_converters/refinenet2mmseg.py rf_lw50_voc.pth \
#       checkpoints/released/lw-refinenet_r50_voc12.pth
# Testing with this config (at the images' own size) runs the released
# model; training fine-tunes it (20k iterations, lr 1e-3). Architecture as
# released: torchvision ResNet layout, align_corners=True, ImageNet
# mean/std on RGB.
# The released weights were trained on VOC + SBD + COCO, whose training
# images may overlap VOC val.
_base_ = ['./lw-refinenet_r50_4xb4-40k_voc12aug-512x512.py']
model = dict(
    backbone=dict(init_cfg=None), decode_head=dict(align_corners=True))
load_from = 'checkpoints/released/lw-refinenet_r50_voc12.pth'

optimizer = dict(lr=1e-3)
optim_wrapper = dict(optimizer=optimizer)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=20000,
         by_epoch=False)
]
train_cfg = dict(max_iters=20000, val_interval=2000)
default_hooks = dict(checkpoint=dict(interval=2000))

# evaluated as released: at the images' own size (DrSleep's validation
# feeds VOC's ~500x375 images as they are), not resized to 2048x512 as the
# from-scratch configs (MMSeg's VOC convention) do, which would upscale
# them about 1.37x
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
