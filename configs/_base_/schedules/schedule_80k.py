# MMSeg's standard 80k-iteration schedule: SGD (lr 0.01, momentum 0.9,
# wd 5e-4) with poly decay.
_base_ = ['mmseg::_base_/schedules/schedule_80k.py']
