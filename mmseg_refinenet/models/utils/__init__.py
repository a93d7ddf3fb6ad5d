from .checks import (check_gt_sem_seg, check_head_inputs, check_image_batch,
                     check_seg_labels, value_checks_enabled)

__all__ = [
    'check_gt_sem_seg', 'check_head_inputs', 'check_image_batch',
    'check_seg_labels', 'value_checks_enabled'
]
