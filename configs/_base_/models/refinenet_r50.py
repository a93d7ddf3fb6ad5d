# RefineNet, 4-cascaded (Lin et al., CVPR 2017, Fig. 2c) on a
# torchvision-style ResNet-50. With depth=101 and 21 classes this is the
# released RefineNet-101 layer for layer (tests/models/test_refinenet_head.py).
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(type='SegDataPreProcessor',
                         mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375],
                         bgr_to_rgb=True,
                         pad_val=0,
                         seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        dilations=(1, 1, 1, 1),
        strides=(1, 2, 2, 2),
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        # ImageNet weights in the torchvision layout, as the released models
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://download.pytorch.org/models/'
                      'resnet50-19c8e357.pth')),
    decode_head=dict(
        type='RefineNetHead',
        in_channels=[256, 512, 1024, 2048],
        in_index=[0, 1, 2, 3],
        channels=256,
        # 3x3 adaptation convs: 256 wide, 512 for the deepest path
        adapt_channels=[256, 256, 256, 512],
        adapt_kernel_size=3,
        # one block per level, deepest first (RefineNet-4 ... RefineNet-1)
        cascade=[[3], [2], [1], [0]],
        num_input_rcus=2,
        num_output_rcus=3,
        with_crp=True,
        crp_stages=4,
        crp_order='pool_conv',
        # the official training code drops out the two deepest levels
        input_dropout_ratio=0.5,
        input_dropout_index=[2, 3],
        dropout_ratio=0.5,
        classifier_kernel_size=3,
        num_classes=19,
        norm_cfg=None,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss',
                         use_sigmoid=False,
                         loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
