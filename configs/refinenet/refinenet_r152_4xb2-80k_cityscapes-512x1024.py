# 4-cascaded RefineNet (Fig. 2c), ResNet-152, cityscapes 512x1024, 80k
# iterations on 4 GPUs x 2 images.
_base_ = [
    '../_base_/models/refinenet_r50.py', '../_base_/datasets/cityscapes.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_80k.py'
]
crop_size = (512, 1024)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor,
             backbone=dict(
                 depth=152,
                 init_cfg=dict(
                     type='Pretrained',
                     checkpoint='https://download.pytorch.org/models/'
                     'resnet152-b121ed2d.pth')),
             decode_head=dict(num_classes=19))
