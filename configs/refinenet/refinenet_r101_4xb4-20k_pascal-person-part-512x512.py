# 4-cascaded RefineNet (Fig. 2c), ResNet-101, PASCAL-Person-Part 512x512, 20k
# iterations on 4 GPUs x 4 images (Tables 1, 2).
_base_ = [
    '../_base_/models/refinenet_r50.py',
    '../_base_/datasets/pascal_person_part.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_20k.py'
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
             decode_head=dict(num_classes=7))
train_dataloader = dict(batch_size=4)
