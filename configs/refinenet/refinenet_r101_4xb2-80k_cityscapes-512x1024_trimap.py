# Trimap evaluation (FRRN, Pohlen et al., CVPR 2017, Sec. 5.3 / Fig. 7) of
# the 4-cascaded RefineNet-101 on Cityscapes val: the model and training are
# those of refinenet_r101_4xb2-80k_cityscapes-512x1024.py; test its
# checkpoint with this config. Besides the usual mIoU it reports the class
# and category (7 Cityscapes categories) IoU counting only the pixels within
# r pixels of a ground-truth label boundary, at full label resolution.
_base_ = ['./refinenet_r101_4xb2-80k_cityscapes-512x1024.py']
test_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(type='TrimapIoUMetric',
         radii=(1, 2, 4, 8, 16, 32, 64, 80),
         categories='cityscapes')
]
