# Light-Weight RefineNet-101 starting from the released PASCAL VOC weights of
# DrSleep/light-weight-refinenet (rf_lw101, 21 classes), converted with
#   python tools/model_converters/refinenet2mmseg.py rf_lw101_voc.pth \
#       checkpoints/released/lw-refinenet_r101_voc12.pth
# The set-up of the R-50 config it inherits (released architecture,
# fine-tuning schedule, testing at the images' own size); see there.
_base_ = ['./lw-refinenet_r50-released_4xb4-20k_voc12aug-512x512.py']
model = dict(backbone=dict(depth=101))
load_from = 'checkpoints/released/lw-refinenet_r101_voc12.pth'
