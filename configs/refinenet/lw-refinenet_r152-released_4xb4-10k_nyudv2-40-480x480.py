# Light-Weight RefineNet-152 starting from the released NYUDv2 weights of
# DrSleep/light-weight-refinenet (rf_lw152, 40 classes), converted with
#   python tools/model_converters/refinenet2mmseg.py rf_lw152_nyu.pth \
#       checkpoints/released/lw-refinenet_r152_nyudv2-40.pth
# The set-up of the R-50 config it inherits (released architecture,
# fine-tuning schedule, testing at the images' own size); see there.
_base_ = ['./lw-refinenet_r50-released_4xb4-10k_nyudv2-40-480x480.py']
model = dict(backbone=dict(depth=152))
load_from = 'checkpoints/released/lw-refinenet_r152_nyudv2-40.pth'
