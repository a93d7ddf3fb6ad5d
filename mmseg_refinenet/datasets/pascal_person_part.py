"""PASCAL-Person-Part: six human parts and background."""
from mmseg.registry import DATASETS
from .base_dataset import StrictSegDataset


@DATASETS.register_module()
class PascalPersonPartDataset(StrictSegDataset):
    """PASCAL-Person-Part, 7 classes (1717 train / 1818 test images).

    Chen et al., "Detect what you can: detecting and representing objects
    using holistic models and body parts", CVPR 2014, as merged into six
    parts plus background for DeepLab (Chen et al., CVPR 2016).
    ``tools/dataset_converters/pascal_person_part.py`` writes::

        img_dir/{train,test}/<voc id>.jpg   VOC2010 JPEG, copied as is
        ann_dir/{train,test}/<voc id>.png   0 background, 1..6 parts,
                                            255 ignored

    Background is a real class (index 0), so ``reduce_zero_label`` stays
    False.

    An empty or missing folder, an image without its label file and an
    unreadable image or label file raise an error naming the folder or file
    (:class:`StrictSegDataset`).

    Args:
        img_suffix (str): Suffix of images. Default: '.jpg'.
        seg_map_suffix (str): Suffix of label maps. Default: '.png'.
        reduce_zero_label (bool): Whether to mark label 0 as ignored.
            Default: False.
    """
    METAINFO = dict(
        classes=('background', 'head', 'torso', 'upper arms', 'lower arms',
                 'upper legs', 'lower legs'),
        palette=[[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0],
                 [0, 0, 128], [128, 0, 128], [0, 128, 128]])

    def __init__(self,
                 img_suffix='.jpg',
                 seg_map_suffix='.png',
                 reduce_zero_label=False,
                 **kwargs) -> None:
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            **kwargs)
