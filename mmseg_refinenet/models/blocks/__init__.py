from .frrn_blocks import FRRU, ResidualUnit
from .refinenet_blocks import (ChainedResidualPooling, MultiResolutionFusion,
                               RefineNetBlock, ResidualConvUnit)

__all__ = [
    'ResidualConvUnit', 'MultiResolutionFusion', 'ChainedResidualPooling',
    'RefineNetBlock', 'ResidualUnit', 'FRRU'
]
