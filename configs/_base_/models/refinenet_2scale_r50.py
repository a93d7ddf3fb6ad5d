# 4-cascaded 2-scale RefineNet (Lin et al., CVPR 2017, Fig. 7c): two
# independent ResNets on the image rescaled by 1.2 and 0.6; each RefineNet
# block fuses one level of both scales (plus the previous block).
_base_ = ['./refinenet_r50.py']
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(backbone=dict(
    _delete_=True,
    type='MultiScaleBackbone',
    scales=(1.2, 0.6),
    backbone=dict(type='ResNet',
                  depth=50,
                  num_stages=4,
                  out_indices=(0, 1, 2, 3),
                  dilations=(1, 1, 1, 1),
                  strides=(1, 2, 2, 2),
                  norm_cfg=norm_cfg,
                  norm_eval=False,
                  style='pytorch',
                  init_cfg=dict(
                      type='Pretrained',
                      checkpoint='https://download.pytorch.org/models/'
                      'resnet50-19c8e357.pth'))),
             decode_head=dict(in_channels=[256, 512, 1024, 2048] * 2,
                              in_index=list(range(8)),
                              adapt_channels=[256, 256, 256, 512] * 2,
                              cascade=[[3, 7], [2, 6], [1, 5], [0, 4]],
                              input_dropout_index=[2, 3, 6, 7]))
