# MMSeg's UNet-S5-D16 with an FCN head (as unet-s5-d16_fcn_4xb4-160k_
# cityscapes-512x1024.py), trained from scratch on CamVid (11 classes,
# 360x480), batch 8 on one GPU, 20k iterations: the shared set-up of
# ../_base_/schedules/camvid_fromscratch_1xb8-20k.py. Whole-image testing
# like the other CamVid models (the base's sliding window is dropped).
_base_ = [
    'mmseg::_base_/models/fcn_unet_s5-d16.py',
    '../_base_/schedules/camvid_fromscratch_1xb8-20k.py'
]
custom_imports = dict(imports=['mmseg_refinenet'], allow_failed_imports=False)
# every CamVid model pads its inputs to a multiple of 32 (360 -> 384);
# UNet-S5-D16 itself needs 16
data_preprocessor = dict(size_divisor=32, test_cfg=dict(size_divisor=32))
model = dict(data_preprocessor=data_preprocessor,
             pretrained=None,
             decode_head=dict(num_classes=11),
             auxiliary_head=dict(num_classes=11),
             test_cfg=dict(_delete_=True, mode='whole'))
