from .frrn_head import FRRNHead
from .refinenet_head import RefineNetHead

__all__ = ['RefineNetHead', 'FRRNHead']
