# MMSeg's FCN, ResNet-50-D8 (dilated, output stride 8), trained from
# scratch on CamVid (11 classes, 360x480), batch 8 on one GPU, 20k
# iterations: the shared set-up of
# ../_base_/schedules/camvid_fromscratch_1xb8-20k.py.
_base_ = [
    'mmseg::_base_/models/fcn_r50-d8.py',
    '../_base_/schedules/camvid_fromscratch_1xb8-20k.py'
]
custom_imports = dict(imports=['mmseg_refinenet'], allow_failed_imports=False)
# every CamVid model pads its inputs to a multiple of 32 (360 -> 384)
data_preprocessor = dict(size_divisor=32, test_cfg=dict(size_divisor=32))
model = dict(data_preprocessor=data_preprocessor,
             pretrained=None,
             decode_head=dict(num_classes=11),
             auxiliary_head=dict(num_classes=11))
