"""MobileNetV2 with an expansion convolution in every inverted residual."""
import torch.nn as nn
from mmcv.cnn import ConvModule

from mmseg.models.backbones import MobileNetV2
from mmseg.registry import MODELS


@MODELS.register_module()
class ExpandedMobileNetV2(MobileNetV2):
    """MMSeg's :class:`~mmseg.models.backbones.MobileNetV2` in which every
    inverted residual block has its 1x1 expansion convolution (with norm
    and activation), also the blocks of expand ratio 1.

    MMSeg's (like torchvision's) MobileNetV2 omits the expansion of the
    first layer (expand ratio 1, 32 -> 16 channels), whose expansion would
    map 32 to 32 channels. The MobileNetV2 of the released Light-Weight
    RefineNet (Nekrasov et al., BMVC 2018) keeps it: a 32 x 32 1x1
    convolution, batch norm and ReLU6 before the depthwise convolution of
    ``layer1`` (1,088 more parameters). Everything else (widths, strides,
    ``out_indices``, the keys ``layer{i}.{j}.conv.{k}``) is MMSeg's; a block
    of expand ratio 1 has ``conv.0`` (expansion), ``conv.1`` (depthwise) and
    ``conv.2`` (projection), as every other block.

    Args: as :class:`~mmseg.models.backbones.MobileNetV2`.
    """

    def make_layer(self, out_channels, num_blocks, stride, dilation,
                   expand_ratio):
        in_channels = self.in_channels
        layer = super().make_layer(out_channels, num_blocks, stride,
                                   dilation, expand_ratio)
        if expand_ratio != 1:
            return layer
        for block in layer:
            hidden = int(round(in_channels * expand_ratio))
            expand = ConvModule(
                in_channels,
                hidden,
                1,
                conv_cfg=self.conv_cfg,
                norm_cfg=self.norm_cfg,
                act_cfg=self.act_cfg)
            block.conv = nn.Sequential(expand, *block.conv)
            in_channels = out_channels
        return layer
