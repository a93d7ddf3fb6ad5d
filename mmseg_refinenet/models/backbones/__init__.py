from .multi_scale_backbone import MultiScaleBackbone

__all__ = ['MultiScaleBackbone']

from .frrn import FRRN  # noqa: E402
from .frrn_resnet_baseline import FRRNResNetBaseline  # noqa: E402

__all__ += ['FRRN', 'FRRNResNetBaseline']
