# Light-Weight RefineNet (Nekrasov et al., BMVC 2018) on MobileNetV2 from
# ImageNet weights (MMSeg's MobileNetV2, mmcls://mobilenet_v2), cityscapes
# 512x1024, 80k iterations on 4 GPUs x 2 images.
_base_ = [
    '../_base_/models/lw_refinenet_mobilenet_v2.py',
    '../_base_/datasets/cityscapes.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_80k.py'
]
crop_size = (512, 1024)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor,
             decode_head=dict(num_classes=19))
