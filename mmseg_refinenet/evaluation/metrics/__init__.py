from .trimap_iou_metric import (CITYSCAPES_CATEGORIES, CITYSCAPES_CATEGORY_MAP,
                                TrimapIoUMetric, boundary_distance,
                                label_boundary)

__all__ = [
    'TrimapIoUMetric', 'label_boundary', 'boundary_distance',
    'CITYSCAPES_CATEGORIES', 'CITYSCAPES_CATEGORY_MAP'
]
