# Light-Weight RefineNet on MobileNetV2 (Nekrasov et al., BMVC 2018), as a
# configuration of RefineNetHead: MMSeg's MobileNetV2 gives six levels
# (24, 32, 64, 96, 160 and 320 channels at 1/4, 1/8, 1/16, 1/16, 1/32 and
# 1/32 of the image); four blocks fuse them deepest first, the two pairs at
# equal resolution (1/32 and 1/16) in one block each. Each level is adapted
# to 256 channels by a 1x1 conv and summed as it is with the previous
# block's output (after its 1x1 fusion conv); ReLU6, then a 4-stage CRP of
# 1x1 convs; no RCUs, no dropout, 3x3 classifier. With 21 classes this is
# the released LW-RefineNet-MobileNetV2 head layer for layer
# (tests/models/test_lw_refinenet_mobilenet_v2.py).
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
        type='MobileNetV2',
        widen_factor=1.,
        strides=(1, 2, 2, 2, 1, 2, 1),
        dilations=(1, 1, 1, 1, 1, 1, 1),
        out_indices=(1, 2, 3, 4, 5, 6),
        norm_cfg=norm_cfg,
        act_cfg=dict(type='ReLU6'),
        norm_eval=False,
        # ImageNet weights of MMPretrain's MobileNetV2, as MMSeg's
        # mobilenet_v2 configs
        init_cfg=dict(type='Pretrained', checkpoint='mmcls://mobilenet_v2')),
    decode_head=dict(
        type='RefineNetHead',
        in_channels=[24, 32, 64, 96, 160, 320],
        in_index=[0, 1, 2, 3, 4, 5],
        channels=256,
        adapt_channels=[256, 256, 256, 256, 256, 256],
        adapt_kernel_size=1,
        # (320, 160) at 1/32, (96, 64) at 1/16, then 32 and 24 channels
        cascade=[[5, 4], [3, 2], [1], [0]],
        input_fusion_convs=False,
        fusion_kernel_size=1,
        num_input_rcus=0,
        num_output_rcus=0,
        with_crp=True,
        crp_stages=4,
        crp_order='pool_conv',
        crp_kernel_size=1,
        act_cfg=dict(type='ReLU6'),
        input_dropout_ratio=0.0,
        dropout_ratio=0.0,
        classifier_kernel_size=3,
        num_classes=19,
        norm_cfg=None,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss',
                         use_sigmoid=False,
                         loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
