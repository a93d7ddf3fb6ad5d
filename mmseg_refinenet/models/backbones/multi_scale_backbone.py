"""Several backbones on rescaled copies of the image (RefineNet Fig. 7c)."""
from typing import List, Sequence

from mmengine.model import BaseModule, ModuleList
from torch import Tensor

from mmseg.models.utils import resize
from mmseg.registry import MODELS


@MODELS.register_module()
class MultiScaleBackbone(BaseModule):
    """Run independent backbones on the image rescaled by each factor.

    The 4-cascaded 2-scale RefineNet (Lin et al., CVPR 2017, Sec. 5.3,
    Fig. 7c) feeds the image at scales 1.2 and 0.6 to two ResNets and fuses
    their feature maps level by level in the RefineNet cascade. This wrapper
    provides the two feature pyramids; the head's ``cascade`` does the
    per-level fusion (e.g. ``cascade=((3, 7), (2, 6), (1, 5), (0, 4))``).

    Shapes: ``(N, 3, H, W)`` -> the concatenation, scale by scale, of each
    backbone's outputs: with two 4-level ResNets, 8 maps, the first four at
    ``scales[0] * H / 4 ... / 32`` and the next four at ``scales[1]``.

    Args:
        backbone (dict): Config of the backbone used at every scale; each
            scale gets its own weights (its ``init_cfg``, e.g. ImageNet
            weights, applies to every copy).
        scales (Sequence[float]): Rescaling factors. Default: (1.2, 0.6).
        align_corners (bool): Of the bilinear image rescaling.
            Default: False.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 scales: Sequence[float] = (1.2, 0.6),
                 align_corners: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg)
        scales = list(scales)
        if not scales or any(
                not isinstance(s, (int, float)) or s <= 0 for s in scales):
            raise ValueError('MultiScaleBackbone scales must be a non-empty '
                             f'list of positive factors, got {scales!r}')
        self.scales = scales
        self.align_corners = align_corners
        # MMEngine's ModuleList: BaseModule.init_weights only reaches
        # children with an init_weights of their own, and each backbone's
        # (e.g. its ImageNet init_cfg) must run
        self.backbones = ModuleList(MODELS.build(backbone) for _ in scales)

    def forward(self, x: Tensor) -> List[Tensor]:
        outs = []
        height, width = x.shape[2:]
        for scale, backbone in zip(self.scales, self.backbones):
            if scale != 1:
                size = (max(1, round(height * scale)),
                        max(1, round(width * scale)))
                scaled = resize(
                    x,
                    size=size,
                    mode='bilinear',
                    align_corners=self.align_corners)
            else:
                scaled = x
            outs.extend(backbone(scaled))
        return outs
