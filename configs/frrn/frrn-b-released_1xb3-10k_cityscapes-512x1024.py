# FRRN B starting from the official Cityscapes weights (TobyPDE/FRRN,
# Lasagne), converted with
#   python tools/model_converters/frrn_lasagne2mmseg.py frrn_b.npz \
#       checkpoints/released/frrn-b_cityscapes.pth --arch B
# Testing with this config runs the official model; training fine-tunes it
# (10k iterations at the paper's final lr 1e-4). The official code feeds RGB
# images scaled to [0, 1] without mean subtraction (its predict scripts show
# the input tensor with cv2.imshow after reversing the channels), so the
# data_preprocessor divides by 255 instead of using ImageNet statistics.
# The pooling stream is upsampled as the official code's Theano
# bilinear_upsampling does (upsample_mode='theano'), not as F.interpolate
# does: the two sample a quarter pixel apart (docs/model_converters.md).
_base_ = ['./frrn-b_1xb3-45k_cityscapes-512x1024.py']
custom_imports = dict(imports=['mmseg_refinenet'], allow_failed_imports=False)
data_preprocessor = dict(mean=[0., 0., 0.], std=[255., 255., 255.])
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(upsample_mode='theano'))
load_from = 'checkpoints/released/frrn-b_cityscapes.pth'

optimizer = dict(lr=1e-4)
optim_wrapper = dict(optimizer=optimizer)
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
train_cfg = dict(max_iters=10000, val_interval=2000)
default_hooks = dict(checkpoint=dict(interval=2000))
