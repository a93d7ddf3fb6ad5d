# single-block RefineNet (Fig. 7a): all four stages in one block, ResNet-101,
# voc12aug 512x512, 40k iterations on 4 GPUs x 4 images.
_base_ = [
    '../_base_/models/refinenet_r50.py',
    '../_base_/datasets/pascal_voc12_aug.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_40k.py'
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor,
             backbone=dict(
                 depth=101,
                 init_cfg=dict(
                     type='Pretrained',
                     checkpoint='https://download.pytorch.org/models/'
                     'resnet101-5d3b4d8f.pth')),
             decode_head=dict(num_classes=21, cascade=[[0, 1, 2, 3]]))
train_dataloader = dict(batch_size=4)
