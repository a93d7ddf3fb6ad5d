# RefineNet-101 (4-cascaded) starting from the released PASCAL VOC weights of
# DrSleep/refinenet-pytorch, converted with
#   python tools/model_converters/refinenet2mmseg.py rf101_voc.pth \
#       checkpoints/released/refinenet_r101_voc12.pth
# Testing with this config (at the images' own size) runs the released
# model
#   python tools/test.py CONFIG checkpoints/released/refinenet_r101_voc12.pth
# and training fine-tunes it (20k iterations, lr 1e-3: a tenth of the
# from-scratch schedule). The architecture is the released one: the
# torchvision ResNet layout (style='pytorch'), align_corners=True
# upsampling and ImageNet mean/std on RGB, which is the data_preprocessor of
# the base. The released weights were trained on VOC + SBD (and, for some
# releases, COCO), whose training images may overlap VOC val.
_base_ = ['./refinenet_r101_4xb4-40k_voc12aug-512x512.py']
model = dict(
    backbone=dict(init_cfg=None), decode_head=dict(align_corners=True))
load_from = 'checkpoints/released/refinenet_r101_voc12.pth'

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
