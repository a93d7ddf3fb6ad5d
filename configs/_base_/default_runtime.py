# Runtime shared by every config of this plugin: MMSeg's default runtime plus
# the plugin import, so that `mim train mmseg CONFIG`, MMSeg's own tools and
# ours all find the RefineNet/FRRN modules.
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['mmseg_refinenet'], allow_failed_imports=False)
