from .data_errors import data_error_message
from .model_loading import (SegmentorLoadError, build_segmentor,
                            config_trust, dataset_meta, load_config,
                            load_segmentor, load_weights)

__all__ = [
    'data_error_message', 'SegmentorLoadError', 'build_segmentor',
    'config_trust', 'dataset_meta', 'load_config', 'load_segmentor',
    'load_weights'
]
