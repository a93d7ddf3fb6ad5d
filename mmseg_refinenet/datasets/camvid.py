"""CamVid, 11 classes, as split and relabelled for SegNet."""
from mmseg.registry import DATASETS
from .base_dataset import StrictSegDataset


@DATASETS.register_module()
class CamVidDataset(StrictSegDataset):
    """CamVid, 11 classes + void (367 train / 101 val / 233 test images).

    Brostow et al., "Semantic object classes in video: a high-definition
    ground truth database", PRL 2009, in the 360x480 split and 11-class
    labelling of SegNet (Badrinarayanan et al., TPAMI 2017).
    ``tools/dataset_converters/camvid.py`` writes::

        img_dir/{train,val,test}/<stem>.png   RGB, 480x360, copied as is
        ann_dir/{train,val,test}/<stem>.png   class index 0..10, 255 = void

    SegNet's void value 11 becomes the ignore index 255.

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
        classes=('Sky', 'Building', 'Pole', 'Road', 'Pavement', 'Tree',
                 'SignSymbol', 'Fence', 'Car', 'Pedestrian', 'Bicyclist'),
        palette=[[128, 128, 128], [128, 0, 0], [192, 192, 128],
                 [128, 64, 128], [60, 40, 222], [128, 128, 0],
                 [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0],
                 [0, 128, 192]])

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
