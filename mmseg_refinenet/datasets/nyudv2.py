"""NYUDv2 with the 40-class labels of Gupta et al. (CVPR 2013)."""
from mmseg.registry import DATASETS
from .base_dataset import StrictSegDataset


@DATASETS.register_module()
class NYUDv2Dataset(StrictSegDataset):
    """NYU Depth v2, 40 classes (795 train / 654 test images), RGB only.

    The 1449 labelled frames of Silberman et al. (ECCV 2012) with the
    894 object classes merged into the 40 classes of Gupta et al.
    (CVPR 2013). ``tools/dataset_converters/nyudv2.py`` extracts them from
    the official ``nyu_depth_v2_labeled.mat`` into::

        img_dir/{train,test}/NNNN.png   RGB, 640x480
        ann_dir/{train,test}/NNNN.png   class index 0..39, 255 = unlabelled

    where ``NNNN`` is the 1-based frame index in the ``.mat`` file. Labels are
    already zero-based, so ``reduce_zero_label`` stays False and unlabelled
    pixels are skipped through ``ignore_index=255``.

    An empty or missing folder, an image without its label file and an
    unreadable image or label file raise an error naming the folder or file
    (:class:`StrictSegDataset`).

    Args:
        img_suffix (str): Suffix of images. Default: '.png'.
        seg_map_suffix (str): Suffix of label maps. Default: '.png'.
        reduce_zero_label (bool): Whether to mark label 0 as ignored.
            Default: False.
    """
    METAINFO = dict(
        classes=('wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table',
                 'door', 'window', 'bookshelf', 'picture', 'counter',
                 'blinds', 'desk', 'shelves', 'curtain', 'dresser', 'pillow',
                 'mirror', 'floor mat', 'clothes', 'ceiling', 'books',
                 'refridgerator', 'television', 'paper', 'towel',
                 'shower curtain', 'box', 'whiteboard', 'person',
                 'night stand', 'toilet', 'sink', 'lamp', 'bathtub', 'bag',
                 'otherstructure', 'otherfurniture', 'otherprop'),
        palette=[[128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128],
                 [128, 0, 128], [0, 128, 128], [128, 128, 128], [64, 0, 0],
                 [192, 0, 0], [64, 128, 0], [192, 128, 0], [64, 0, 128],
                 [192, 0, 128], [64, 128, 128], [192, 128, 128], [0, 64, 0],
                 [128, 64, 0], [0, 192, 0], [128, 192, 0], [0, 64, 128],
                 [128, 64, 128], [0, 192, 128], [128, 192, 128], [64, 64, 0],
                 [192, 64, 0], [64, 192, 0], [192, 192, 0], [64, 64, 128],
                 [192, 64, 128], [64, 192, 128], [192, 192, 128], [0, 0, 64],
                 [128, 0, 64], [0, 128, 64], [128, 128, 64], [0, 0, 192],
                 [128, 0, 192], [0, 128, 192], [128, 128, 192], [64, 0, 64]])

    def __init__(self,
                 img_suffix='.png',
                 seg_map_suffix='.png',
                 reduce_zero_label=False,
                 **kwargs) -> None:
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            **kwargs)
