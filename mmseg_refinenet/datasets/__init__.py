from .base_dataset import StrictSegDataset
from .camvid import CamVidDataset
from .nyudv2 import NYUDv2Dataset
from .pascal_person_part import PascalPersonPartDataset
from .sunrgbd import SUNRGBDDataset
from .synthetic import SYNTHETIC_METAINFO, generate_synthetic_dataset
from .transforms import *  # noqa: F401,F403

__all__ = [
    'SYNTHETIC_METAINFO', 'generate_synthetic_dataset', 'CamVidDataset',
    'NYUDv2Dataset', 'PascalPersonPartDataset', 'SUNRGBDDataset',
    'StrictSegDataset'
]
