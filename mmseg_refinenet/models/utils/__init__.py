from .arg_checks import (check_channels, check_non_negative_int,
                         check_odd_kernel_size, check_one_of,
                         check_positive_int)
from .checks import (check_gt_sem_seg, check_head_inputs, check_image_batch,
                     check_seg_labels, value_checks_enabled)
from .max_pooling import recomputing_max_pool2d, window_max_pool2d
from .theano_upsample import theano_bilinear_upsample

__all__ = [
    'check_channels', 'check_gt_sem_seg', 'check_head_inputs',
    'check_image_batch', 'check_non_negative_int', 'check_odd_kernel_size',
    'check_one_of', 'check_positive_int', 'check_seg_labels',
    'recomputing_max_pool2d', 'theano_bilinear_upsample',
    'value_checks_enabled', 'window_max_pool2d'
]
