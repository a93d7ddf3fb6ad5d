"""Weight converters: published checkpoints -> this plugin's layout.

The command line tools are ``tools/model_converters/refinenet2mmseg.py`` and
``tools/model_converters/frrn_lasagne2mmseg.py``; see
``docs/model_converters.md``. The published key names live only here.
"""
from .frrn import (convert_frrn_lasagne_params, frrn_lasagne_layout,
                   load_lasagne_npz)
from .refinenet import (convert_refinenet_state_dict, detect_refinenet,
                        official_buffers, official_lw_mobilenet_v2_shapes,
                        official_lw_mobilenet_v2_to_mmseg_key,
                        official_refinenet_buffers, official_refinenet_shapes,
                        official_to_mmseg_key, save_mmengine_checkpoint,
                        unwrap_checkpoint)

__all__ = [
    'convert_frrn_lasagne_params', 'frrn_lasagne_layout', 'load_lasagne_npz',
    'convert_refinenet_state_dict', 'detect_refinenet',
    'save_mmengine_checkpoint', 'official_buffers',
    'official_lw_mobilenet_v2_shapes',
    'official_lw_mobilenet_v2_to_mmseg_key', 'official_refinenet_buffers',
    'official_refinenet_shapes', 'official_to_mmseg_key', 'unwrap_checkpoint'
]
