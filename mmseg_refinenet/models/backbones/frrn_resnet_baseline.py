"""ResNet encoder/decoder baseline of FRRN (Sec. 5.1 of the paper).

Pohlen et al., "Full-Resolution Residual Networks for Semantic Segmentation
in Street Scenes", CVPR 2017 (https://arxiv.org/abs/1611.08323).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule

from mmseg.registry import MODELS
from ..blocks.frrn_blocks import ResidualUnit
from ..utils.arg_checks import check_one_of
from .frrn import FRRN_INIT_CFG, FRRNBase

SKIP_MODES = ('add', 'concat')


@MODELS.register_module()
class FRRNResNetBaseline(FRRNBase):
    """ResNet encoder/decoder baseline of FRRN, Sec. 5.1 of the paper.

    The FRRN with every FRRU replaced by a residual unit (RU) of the same
    width: there is only the pooling stream, no residual stream. To carry
    high-resolution information past the bottleneck, the input of every 2x2
    max-pooling is passed by a skip connection to the output of the
    matching bilinear x2 upsampling. With ``skip_mode='add'`` (default) the
    skip is added, through a 1x1 projection (no bias) where the widths
    differ; with ``skip_mode='concat'`` it is concatenated, as in U-Net.
    The paper does not say which; ``'add'`` reproduces its parameter count
    (16.8M, ``'concat'``: 18.0M, for FRRN A widths and 19 classes).

    Forward pass for an input of shape (N, in_channels, H, W):

    1. stem, FRRN's (:class:`FRRNBase`): 5x5 conv-BN-ReLU to
       ``base_channels`` (48), then ``num_stem_units`` RUs -> ``s_0``:
       (N, 48, H, W);
    2. encoder stage ``i`` (``i`` = 1, 2, ...): keep the stage input
       ``s_{i-1}`` as skip, max-pool 2x2, apply the stage's RUs in sequence
       (the first one projects the channels) -> ``s_i`` at ``1 / 2**i``;
    3. decoder stage at ``1 / 2**k``: upsample x2 (bilinear), merge the
       skip ``s_k`` (add or concatenate) and apply the stage's RUs;
    4. end: upsample x2 to full resolution, merge ``s_0`` and apply
       ``num_stem_units`` RUs of ``base_channels`` -> (N, 48, H, W).

    With the FRRN A widths (the default) and a 19-class 1x1 classifier the
    network has about 16.7M parameters (Sec. 5.1).

    Args:
        arch (str | None): Take the stage widths and unit counts of FRRN
            ``'A'`` or ``'B'`` (Table 1), or None to use ``encoder`` and
            ``decoder`` only. Default: 'A'.
        encoder (Sequence[tuple[int, int]] | None): ``(num_units,
            channels)`` of the RUs of each encoder stage. Overrides the arch
            setting. Default: None.
        decoder (Sequence[tuple[int, int]] | None): ``(num_units,
            channels)`` of each decoder stage, ``len(encoder) - 1`` stages.
            Overrides the arch setting. Default: None.
        in_channels (int): Number of input image channels. Default: 3.
        base_channels (int): Width of the stem and of the final RUs.
            Default: 48.
        num_stem_units (int): Number of RUs in the stem and at the end.
            Default: 3.
        skip_mode (str): How a skip joins the upsampled stream: ``'add'``
            or ``'concat'``. Default: 'add'.
        align_corners (bool): ``align_corners`` of the bilinear upsampling.
            Default: False.
        conv_cfg (dict | None): Config of the convolutions. Default: None.
        norm_cfg (dict): Config of the normalisation layers.
            Default: dict(type='BN', requires_grad=True).
        act_cfg (dict): Config of the activations. Default: dict(type='ReLU').
        with_cp (bool): Gradient checkpointing of every RU. Default: False.
        check_finite (bool): Check the input images for NaN and Inf at
            every forward (see :meth:`FRRNBase.check_input`).
            Default: False.
        init_cfg (dict | list[dict] | None): Initialisation config.
            Default: FRRN's (Kaiming init of the convolutions, constant
            1 / 0 for the norm layers).

    Returns (from ``forward``):
        list[Tensor]: One feature map, (N, base_channels, H, W).
    """

    def __init__(self,
                 arch='A',
                 encoder=None,
                 decoder=None,
                 in_channels=3,
                 base_channels=48,
                 num_stem_units=3,
                 skip_mode='add',
                 align_corners=False,
                 conv_cfg=None,
                 norm_cfg=dict(type='BN', requires_grad=True),
                 act_cfg=dict(type='ReLU'),
                 with_cp=False,
                 check_finite=False,
                 init_cfg=FRRN_INIT_CFG):
        check_one_of(type(self).__name__, 'skip_mode', skip_mode,
                     SKIP_MODES)
        super().__init__(arch, encoder, decoder, in_channels, base_channels,
                         num_stem_units, conv_cfg, norm_cfg, act_cfg,
                         with_cp, check_finite, init_cfg)
        self.skip_mode = skip_mode
        self.align_corners = align_corners
        unit_cfg = dict(
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            with_cp=with_cp)

        # skip_channels[k]: channels of the input of the (k + 1)-th pooling,
        # i.e. of the feature map at 1 / 2**k resolution
        skip_channels = [base_channels]
        channels = base_channels
        self.encoder_stages = nn.ModuleList()
        for num_units, out_channels in self.encoder:
            stage = nn.ModuleList()
            for _ in range(num_units):
                stage.append(ResidualUnit(channels, out_channels, **unit_cfg))
                channels = out_channels
            self.encoder_stages.append(stage)
            skip_channels.append(channels)

        # skip_projs[j] maps the j-th skip (from the coarsest) to the width
        # of the upsampled stream it is added to ('add' mode only)
        self.skip_projs = nn.ModuleList()
        self.decoder_stages = nn.ModuleList()
        level = len(self.encoder)
        for num_units, out_channels in self.decoder:
            level -= 1
            channels = self._make_skip(skip_channels[level], channels,
                                       conv_cfg)
            stage = nn.ModuleList()
            for _ in range(num_units):
                stage.append(ResidualUnit(channels, out_channels, **unit_cfg))
                channels = out_channels
            self.decoder_stages.append(stage)

        self.end_units = nn.ModuleList()
        channels = self._make_skip(skip_channels[0], channels, conv_cfg)
        for _ in range(num_stem_units):
            self.end_units.append(
                ResidualUnit(channels, base_channels, **unit_cfg))
            channels = base_channels

    def _make_skip(self, skip_channels, channels, conv_cfg):
        """Append the skip projection; return the merged stream's width."""
        if self.skip_mode == 'concat':
            self.skip_projs.append(nn.Identity())
            return channels + skip_channels
        if skip_channels == channels:
            self.skip_projs.append(nn.Identity())
        else:
            self.skip_projs.append(
                ConvModule(
                    skip_channels,
                    channels,
                    1,
                    bias=False,
                    conv_cfg=conv_cfg,
                    norm_cfg=None,
                    act_cfg=None))
        return channels

    def _upsample_merge(self, x, skip, index):
        """Upsample ``x`` to the size of ``skip`` and merge the skip."""
        x = F.interpolate(
            x,
            size=skip.shape[-2:],
            mode='bilinear',
            align_corners=self.align_corners)
        skip = self.skip_projs[index](skip)
        if self.skip_mode == 'concat':
            return torch.cat([x, skip], dim=1)
        return x + skip

    def forward(self, x):
        """Forward function.

        Args:
            x (Tensor): Images, (N, in_channels, H, W) with H and W divisible
                by ``self.size_divisor``.

        Returns:
            list[Tensor]: ``[(N, base_channels, H, W)]``.
        """
        x = self._forward_stem(x)
        skips = []
        for stage in self.encoder_stages:
            skips.append(x)
            x = F.max_pool2d(x, kernel_size=2, stride=2)
            for unit in stage:
                x = unit(x)
        for index, stage in enumerate(self.decoder_stages):
            x = self._upsample_merge(x, skips.pop(), index)
            for unit in stage:
                x = unit(x)
        x = self._upsample_merge(x, skips.pop(), len(self.decoder_stages))
        for unit in self.end_units:
            x = unit(x)
        return [x]
