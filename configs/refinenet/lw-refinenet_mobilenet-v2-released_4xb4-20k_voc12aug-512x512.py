# Light-Weight RefineNet-MobileNetV2 starting from the released PASCAL VOC
# weights of DrSleep/light-weight-refinenet (mbv2, 21 classes), converted
# with
#   python tools/model_converters/refinenet2mmseg.py mbv2_voc.pth \
#       checkpoints/released/lw-refinenet_mobilenet-v2_voc12.pth
# Testing with this config (at the images' own size, single scale, as the
# release's 76.2 mIoU on VOC val) runs the released model
#   python tools/test.py CONFIG \
#       checkpoints/released/lw-refinenet_mobilenet-v2_voc12.pth
# and training fine-tunes it (20k iterations, lr 1e-3). Architecture as
# released: its MobileNetV2 keeps the expansion conv of the first inverted
# residual (ExpandedMobileNetV2, 1,088 parameters more than MMSeg's),
# align_corners=True, ImageNet mean/std on RGB.
# The released weights were trained on VOC + SBD + COCO, whose training
# images may overlap VOC val.
_base_ = ['./lw-refinenet_mobilenet-v2_4xb4-40k_voc12aug-512x512.py']
model = dict(
    backbone=dict(type='ExpandedMobileNetV2', init_cfg=None),
    decode_head=dict(align_corners=True))
load_from = 'checkpoints/released/lw-refinenet_mobilenet-v2_voc12.pth'

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
# from-scratch configs (MMSeg's VOC convention) do
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
