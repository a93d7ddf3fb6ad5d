# Runtime shared by every config of this plugin: MMSeg's default runtime plus
# the plugin import, so that `mim train mmseg CONFIG`, MMSeg's own tools and
# ours all find the RefineNet/FRRN modules.
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['mmseg_refinenet'], allow_failed_imports=False)
# The checkpoint hook is not set here: MMEngine refuses a key that two bases
# of one config both set, and every config also takes a schedule base that
# sets `default_hooks`. The schedule bases (and the configs that set their
# own `default_hooks`) use `AtomicCheckpointHook` (mmseg_refinenet.engine):
# checkpoints written atomically, and resumed runs that continue exactly.
