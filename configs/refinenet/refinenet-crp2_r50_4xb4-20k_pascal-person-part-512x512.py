# RefineNet with 2-stage chained residual pooling (Fig. 3d, the paper's 2
# pooling blocks; our default is 4), ResNet-50, PASCAL-Person-Part 512x512, 20k
# iterations on 4 GPUs x 4 images (CRP ablation).
_base_ = [
    '../_base_/models/refinenet_r50.py',
    '../_base_/datasets/pascal_person_part.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_20k.py'
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor,
             backbone=dict(
                 depth=50,
                 init_cfg=dict(
                     type='Pretrained',
                     checkpoint='https://download.pytorch.org/models/'
                     'resnet50-19c8e357.pth')),
             decode_head=dict(num_classes=7, crp_stages=2))
train_dataloader = dict(batch_size=4)
