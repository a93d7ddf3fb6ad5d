# Light-Weight RefineNet-152 starting from the released PASCAL-Context
# weights of DrSleep/light-weight-refinenet (rf_lw152, 60 classes),
# converted with
#   python tools/model_converters/refinenet2mmseg.py rf_lw152_context.pth \
#       checkpoints/released/lw-refinenet_r152_pascal-context-60.pth
# The set-up of the R-101 config it inherits (released architecture and
# class order, fine-tuning schedule, testing at the images' own size); see
# there.
_base_ = ['./lw-refinenet_r101-released_4xb4-40k_pascal-context-60-480x480.py']
model = dict(backbone=dict(depth=152))
load_from = 'checkpoints/released/lw-refinenet_r152_pascal-context-60.pth'
