# Trimap evaluation (Pohlen et al., CVPR 2017, Sec. 5.3 / Fig. 7) of FRRN
# A on Cityscapes val: the model and training are those of
# frrn-a_1xb3-45k_cityscapes-256x512.py; test its checkpoint with this
# config. Besides the usual mIoU it reports the class and category
# (7 Cityscapes categories) IoU counting only the pixels within r pixels of
# a ground-truth label boundary, r = 1 ... 80, at the full 1024x2048 label
# resolution (the prediction is upsampled bilinearly first).
_base_ = ['./frrn-a_1xb3-45k_cityscapes-256x512.py']
custom_imports = dict(imports=['mmseg_refinenet'], allow_failed_imports=False)
test_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(type='TrimapIoUMetric',
         radii=(1, 2, 4, 8, 16, 32, 64, 80),
         categories='cityscapes')
]
