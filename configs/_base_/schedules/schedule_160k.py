# MMSeg's standard 160k-iteration schedule: SGD (lr 0.01, momentum 0.9,
# wd 5e-4) with poly decay.
_base_ = ['mmseg::_base_/schedules/schedule_160k.py']
# Checkpoints written atomically, with the random generator states, so that
# `tools/train.py CONFIG --resume` after a crash or a kill continues exactly
# (mmseg_refinenet.engine.AtomicCheckpointHook; interval etc. from MMSeg).
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
