# 4-cascaded RefineNet (Fig. 2c), ResNet-101, pascal-context-60 480x480, 80k
# iterations on 4 GPUs x 4 images.
_base_ = [
    '../_base_/models/refinenet_r50.py',
    '../_base_/datasets/pascal_context.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_80k.py'
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
             decode_head=dict(num_classes=60))
train_dataloader = dict(batch_size=4)
