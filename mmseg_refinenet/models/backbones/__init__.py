from .expanded_mobilenet_v2 import ExpandedMobileNetV2
from .frrn import FRRN
from .frrn_resnet_baseline import FRRNResNetBaseline
from .multi_scale_backbone import MultiScaleBackbone

__all__ = [
    'ExpandedMobileNetV2', 'FRRN', 'FRRNResNetBaseline', 'MultiScaleBackbone'
]
