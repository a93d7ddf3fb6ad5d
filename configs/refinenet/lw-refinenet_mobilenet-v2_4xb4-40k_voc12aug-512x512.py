# Light-Weight RefineNet (Nekrasov et al., BMVC 2018) on MobileNetV2 from
# ImageNet weights (MMSeg's MobileNetV2, mmcls://mobilenet_v2), voc12aug
# 512x512, 40k iterations on 4 GPUs x 4 images.
_base_ = [
    '../_base_/models/lw_refinenet_mobilenet_v2.py',
    '../_base_/datasets/pascal_voc12_aug.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_40k.py'
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor,
             decode_head=dict(num_classes=21))
train_dataloader = dict(batch_size=4)
