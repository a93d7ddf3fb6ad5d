"""mmseg_refinenet: RefineNet and FRRN as MMSegmentation 1.x plugins.

Add to any MMSeg config::

    custom_imports = dict(imports=['mmseg_refinenet'],
                          allow_failed_imports=False)

Importing the package registers its models, losses, datasets, transforms and
metrics in MMSeg's registries, and makes MMEngine's loader for local
checkpoint files build only the types of a checkpoint, which never runs code
from the file and works with torch >= 2.6 (see
:mod:`mmseg_refinenet.utils.checkpoint`).
"""
from .utils import register_checkpoint_loader
from .version import __version__

register_checkpoint_loader()

from . import datasets  # noqa: E402,F401  (registers datasets/transforms)
from . import engine  # noqa: E402,F401  (registers AtomicCheckpointHook)
from . import evaluation  # noqa: E402,F401  (registers metrics)
from . import models  # noqa: E402,F401  (registers models)

__all__ = ['__version__']
