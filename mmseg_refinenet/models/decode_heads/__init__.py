from .refinenet_head import RefineNetHead

__all__ = ['RefineNetHead']

from .frrn_head import FRRNHead  # noqa: E402

__all__ += ['FRRNHead']
