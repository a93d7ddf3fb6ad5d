# 4-cascaded RefineNet (Fig. 2c), ResNet-101, SUN RGB-D (37 classes) 480x480,
# 40k iterations on 4 GPUs x 4 images (Table 7).
_base_ = [
    '../_base_/models/refinenet_r50.py',
    '../_base_/datasets/sunrgbd_37.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_40k.py'
]
crop_size = (480, 480)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor,
             backbone=dict(
                 depth=101,
                 init_cfg=dict(
                     type='Pretrained',
                     checkpoint='https://download.pytorch.org/models/'
                     'resnet101-5d3b4d8f.pth')),
             decode_head=dict(num_classes=37))
train_dataloader = dict(batch_size=4)
