# 4-cascaded 2-scale RefineNet (Fig. 7c): two ResNets at scales 1.2 and 0.6,
# ResNet-152, voc12aug 512x512, 40k iterations on 4 GPUs x 4 images.
_base_ = [
    '../_base_/models/refinenet_2scale_r50.py',
    '../_base_/datasets/pascal_voc12_aug.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_40k.py'
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(backbone=dict(
        depth=152,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://download.pytorch.org/models/'
                      'resnet152-b121ed2d.pth'))),
    decode_head=dict(num_classes=21))
train_dataloader = dict(batch_size=4)
