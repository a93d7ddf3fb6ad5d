"""SUN RGB-D with the 37-class labels of the official toolbox."""
from mmseg.registry import DATASETS
from .base_dataset import StrictSegDataset


@DATASETS.register_module()
class SUNRGBDDataset(StrictSegDataset):
    """SUN RGB-D, 37 classes (5285 train / 5050 test images), RGB only.

    Song et al., "SUN RGB-D: A RGB-D scene understanding benchmark suite",
    CVPR 2015. ``tools/dataset_converters/sunrgbd.py`` reads the 37-class
    ``seglabel`` maps of the toolbox's ``SUNRGBD2Dseg.mat`` and the split of
    ``allsplit.mat`` and writes::

        img_dir/{train,test}/NNNNN.jpg  the original JPEG, copied as is
        ann_dir/{train,test}/NNNNN.png  class index 0..36, 255 = unlabelled

    where ``NNNNN`` is the 1-based index of the frame in ``SUNRGBDMeta.mat``.
    Labels are already zero-based, so ``reduce_zero_label`` stays False and
    unlabelled pixels are skipped through ``ignore_index=255``.

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
        classes=('wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table',
                 'door', 'window', 'bookshelf', 'picture', 'counter',
                 'blinds', 'desk', 'shelves', 'curtain', 'dresser', 'pillow',
                 'mirror', 'floor_mat', 'clothes', 'ceiling', 'books',
                 'fridge', 'tv', 'paper', 'towel', 'shower_curtain', 'box',
                 'whiteboard', 'person', 'night_stand', 'toilet', 'sink',
                 'lamp', 'bathtub', 'bag'),
        palette=[[128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128],
                 [128, 0, 128], [0, 128, 128], [128, 128, 128], [64, 0, 0],
                 [192, 0, 0], [64, 128, 0], [192, 128, 0], [64, 0, 128],
                 [192, 0, 128], [64, 128, 128], [192, 128, 128], [0, 64, 0],
                 [128, 64, 0], [0, 192, 0], [128, 192, 0], [0, 64, 128],
                 [128, 64, 128], [0, 192, 128], [128, 192, 128], [64, 64, 0],
                 [192, 64, 0], [64, 192, 0], [192, 192, 0], [64, 64, 128],
                 [192, 64, 128], [64, 192, 128], [192, 192, 128], [0, 0, 64],
                 [128, 0, 64], [0, 128, 64], [128, 128, 64], [0, 0, 192],
                 [128, 0, 192]])

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
