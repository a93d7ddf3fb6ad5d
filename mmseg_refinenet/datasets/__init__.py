from .synthetic import SYNTHETIC_METAINFO, generate_synthetic_dataset
from .transforms import *  # noqa: F401,F403

__all__ = ['SYNTHETIC_METAINFO', 'generate_synthetic_dataset']
