from .refinenet_blocks import (ChainedResidualPooling, MultiResolutionFusion,
                               RefineNetBlock, ResidualConvUnit)

__all__ = [
    'ResidualConvUnit', 'MultiResolutionFusion', 'ChainedResidualPooling',
    'RefineNetBlock'
]

from .frrn_blocks import FRRU, ResidualUnit  # noqa: E402

__all__ += ['ResidualUnit', 'FRRU']
