from .frrn import FRRN
from .frrn_resnet_baseline import FRRNResNetBaseline
from .multi_scale_backbone import MultiScaleBackbone

__all__ = ['FRRN', 'FRRNResNetBaseline', 'MultiScaleBackbone']
