# 2-cascaded RefineNet (Fig. 7b, Table 9), ResNet-50, NYUDv2 (40 classes)
# 480x480, 20k iterations on 4 GPUs x 4 images (Table 9).
_base_ = [
    '../_base_/models/refinenet_r50.py',
    '../_base_/datasets/nyudv2_40.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_20k.py'
]
crop_size = (480, 480)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor,
             backbone=dict(
                 depth=50,
                 init_cfg=dict(
                     type='Pretrained',
                     checkpoint='https://download.pytorch.org/models/'
                     'resnet50-19c8e357.pth')),
             decode_head=dict(num_classes=40, cascade=[[2, 3], [0, 1]]))
train_dataloader = dict(batch_size=4)
