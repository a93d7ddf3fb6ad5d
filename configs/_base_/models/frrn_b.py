# FRRN B (Pohlen et al., CVPR 2017, Table 1) with the bootstrapped
# cross-entropy loss (Eq. 10). Inputs are padded to a multiple of 32, the
# total pooling factor of FRRN B.
custom_imports = dict(imports=['mmseg_refinenet'], allow_failed_imports=False)
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(type='SegDataPreProcessor',
                         mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375],
                         bgr_to_rgb=True,
                         size_divisor=32,
                         pad_val=0,
                         seg_pad_val=255,
                         test_cfg=dict(size_divisor=32))
model = dict(type='EncoderDecoder',
             data_preprocessor=data_preprocessor,
             backbone=dict(type='FRRN',
                           arch='B',
                           base_channels=48,
                           residual_channels=32,
                           norm_cfg=norm_cfg,
                           with_cp=False),
             decode_head=dict(type='FRRNHead',
                              in_channels=48,
                              channels=48,
                              num_classes=19,
                              dropout_ratio=0.,
                              align_corners=False,
                              loss_decode=dict(
                                  type='BootstrappedCrossEntropyLoss',
                                  k=32768,
                                  loss_weight=1.0)),
             train_cfg=dict(),
             test_cfg=dict(mode='whole'))
