from .checks import (check_gt_sem_seg, check_head_inputs, check_image_batch,
                     check_seg_labels, value_checks_enabled)
from .max_pooling import recomputing_max_pool2d, window_max_pool2d
from .theano_upsample import theano_bilinear_upsample

__all__ = [
    'check_gt_sem_seg', 'check_head_inputs', 'check_image_batch',
    'check_seg_labels', 'recomputing_max_pool2d', 'theano_bilinear_upsample',
    'value_checks_enabled', 'window_max_pool2d'
]
