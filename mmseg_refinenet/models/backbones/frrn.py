"""Full-Resolution Residual Network (FRRN) backbone.

Pohlen et al., "Full-Resolution Residual Networks for Semantic Segmentation
in Street Scenes", CVPR 2017 (https://arxiv.org/abs/1611.08323).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule

from mmseg.registry import MODELS
from ..blocks.frrn_blocks import FRRU, ResidualUnit
from ..utils import (check_image_batch, theano_bilinear_upsample,
                     window_max_pool2d)
from ..utils.arg_checks import (check_channels, check_one_of,
                                check_positive_int)

UPSAMPLE_MODES = ('bilinear', 'theano')

# Kaiming-normal convolutions, norm layers at scale 1 and shift 0
FRRN_INIT_CFG = [
    dict(type='Kaiming', layer='Conv2d'),
    dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
]


def check_stage_spec(spec, name, owner):
    """Validate a stage list ``((num_units, channels), ...)``.

    Args:
        spec (Sequence[Sequence[int]]): One ``(num_units, channels)`` pair
            per stage.
        name (str): Name of the argument, for the error message.
        owner (str): Name of the module, for the error message.

    Returns:
        tuple[tuple[int, int]]: The validated spec as a tuple of pairs.
    """
    if not isinstance(spec, (list, tuple)) or len(spec) == 0:
        raise ValueError(
            f'{owner}: {name} must be a non-empty sequence of '
            f'(num_units, channels) pairs, got {spec!r}')
    stages = []
    for i, stage in enumerate(spec):
        if not isinstance(stage, (list, tuple)) or len(stage) != 2:
            raise ValueError(
                f'{owner}: {name}[{i}] must be a (num_units, channels) '
                f'pair, got {stage!r}')
        num_units, channels = stage
        check_positive_int(owner, f'{name}[{i}] num_units', num_units)
        check_channels(owner, f'{name}[{i}] channels', channels)
        stages.append((num_units, channels))
    return tuple(stages)


def resolve_arch(arch_settings, arch, encoder, decoder, owner):
    """The validated ``(encoder, decoder)`` stage specs of an FRRN-like net.

    ``arch`` picks a row of ``arch_settings`` (Table 1); ``encoder`` or
    ``decoder``, when given, override that row's. With ``arch=None`` both
    must be given. The decoder has one stage fewer than the encoder (the
    last encoder stage is the bottleneck).

    Returns:
        tuple: ``(encoder, decoder)``, each a tuple of
        ``(num_units, channels)`` pairs.
    """
    if arch is not None:
        if arch not in arch_settings:
            raise ValueError(
                f'{owner}: invalid arch {arch!r}; expected one of '
                f'{sorted(arch_settings)} or None (then give encoder and '
                'decoder)')
        setting = arch_settings[arch]
        encoder = setting['encoder'] if encoder is None else encoder
        decoder = setting['decoder'] if decoder is None else decoder
    elif encoder is None or decoder is None:
        raise ValueError(
            f'{owner}: with arch=None both encoder and decoder must be '
            'given as ((num_units, channels), ...)')
    encoder = check_stage_spec(encoder, 'encoder', owner)
    if isinstance(decoder, (list, tuple)) and len(decoder) == 0:
        decoder = ()  # a single encoder stage: no decoder
    else:
        decoder = check_stage_spec(decoder, 'decoder', owner)
    if len(decoder) != len(encoder) - 1:
        raise ValueError(
            f'{owner}: decoder must have len(encoder) - 1 = '
            f'{len(encoder) - 1} stages (the last encoder stage is the '
            f'bottleneck), got {len(decoder)}')
    return encoder, decoder


class FRRNBase(BaseModule):
    """What FRRN and its ResNet encoder/decoder baseline share.

    Both networks (Pohlen et al., CVPR 2017, Fig. 2b and Sec. 5.1) read
    their stage layout from a row of Table 1 (:func:`resolve_arch`), start
    with the same full-resolution stem, take images whose sides are
    multiples of their total pooling factor, and are initialised the same
    way. This class builds and checks that part; the subclasses add their
    encoder, decoder and end units and their ``forward``.

    Stem: a 5x5 conv-BN-ReLU to ``base_channels``, then ``num_stem_units``
    residual units (:class:`ResidualUnit`) of ``base_channels``:
    (N, in_channels, H, W) -> (N, base_channels, H, W).

    Args:
        arch, encoder, decoder: The stage layout; see :func:`resolve_arch`.
        in_channels (int): Number of input image channels.
        base_channels (int): Width of the stem.
        num_stem_units (int): Number of RUs in the stem.
        conv_cfg (dict | None): Config of the convolutions.
        norm_cfg (dict): Config of the normalisation layers.
        act_cfg (dict): Config of the activations.
        with_cp (bool): Gradient checkpointing of the stem's RUs.
        check_finite (bool): Check the input images for NaN and Inf at
            every forward (one device synchronisation per step; see
            :meth:`check_input`).
        init_cfg (dict | list[dict] | None): Initialisation config; the
            subclasses default to :data:`FRRN_INIT_CFG`.
    """

    arch_settings = {
        'A':
        dict(
            encoder=((3, 96), (4, 192), (2, 384), (2, 384)),
            decoder=((2, 192), (2, 192), (2, 96))),
        'B':
        dict(
            encoder=((3, 96), (4, 192), (2, 384), (2, 384), (2, 384)),
            decoder=((2, 192), (2, 192), (2, 192), (2, 96))),
    }

    def __init__(self, arch, encoder, decoder, in_channels, base_channels,
                 num_stem_units, conv_cfg, norm_cfg, act_cfg, with_cp,
                 check_finite, init_cfg):
        super().__init__(init_cfg=init_cfg)
        owner = type(self).__name__
        self.encoder, self.decoder = resolve_arch(
            self.arch_settings, arch, encoder, decoder, owner)
        check_channels(owner, 'in_channels', in_channels)
        check_channels(owner, 'base_channels', base_channels)
        check_positive_int(owner, 'num_stem_units', num_stem_units)
        self.arch = arch
        self.in_channels = in_channels
        self.base_channels = base_channels
        self.check_finite = check_finite
        self.size_divisor = 2**len(self.encoder)

        self.stem_conv = ConvModule(
            in_channels,
            base_channels,
            5,
            padding=2,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg)
        self.stem_units = nn.ModuleList(
            ResidualUnit(
                base_channels,
                base_channels,
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg,
                with_cp=with_cp) for _ in range(num_stem_units))

    def check_input(self, x):
        """Raise a ValueError unless ``x`` is a batch this network takes.

        ``x`` must be (N, ``in_channels``, H, W) with H and W divisible by
        ``size_divisor`` and, with ``check_finite``, free of NaN and Inf:
        this is the first module to see the image, so the message can say
        which setting to change (see
        :func:`~mmseg_refinenet.models.utils.check_image_batch`).
        """
        check_image_batch(
            type(self).__name__,
            x,
            self.in_channels,
            self.size_divisor,
            check_finite=self.check_finite)

    def _forward_stem(self, x):
        """Check ``x`` and apply the stem: (N, in_channels, H, W) ->
        (N, base_channels, H, W)."""
        self.check_input(x)
        x = self.stem_conv(x)
        for unit in self.stem_units:
            x = unit(x)
        return x


@MODELS.register_module()
class FRRN(FRRNBase):
    """Full-Resolution Residual Network backbone (FRRN A / FRRN B).

    Implements Sec. 3-4, Fig. 2b and Table 1 of `Full-Resolution Residual
    Networks for Semantic Segmentation in Street Scenes
    <https://arxiv.org/abs/1611.08323>`_, following the official release
    (TobyPDE/FRRN, ``dltools/architectures.py``). The network carries two
    streams:

    * the **residual stream** ``z`` (``residual_channels`` = 32 channels),
      which stays at the full input resolution and only receives the
      residuals of the FRRUs;
    * the **pooling stream** ``y``, which is max-pooled 2x2 before every
      encoder stage and bilinearly upsampled x2 before every decoder stage.

    Forward pass for an input of shape (N, in_channels, H, W):

    1. stem: 5x5 conv-BN-ReLU to ``base_channels`` (48), then
       ``num_stem_units`` RUs of ``base_channels`` -> (N, 48, H, W);
    2. the residual stream is split off the stem output by a 1x1 conv + BN
       (no ReLU) -> ``z``: (N, 32, H, W);
    3. encoder: for stage ``i`` (``i`` = 1, 2, ...) the pooling stream is
       max-pooled 2x2 to ``1 / 2**i`` resolution, then passes the stage's
       FRRUs one after the other; each FRRU takes the previous FRRU's
       ``(y, z)`` and returns the new ``(y, z)`` (Eq. 6-7);
    4. decoder: for each stage the pooling stream is upsampled x2
       (bilinear) and passes the stage's FRRUs in the same way;
    5. end: the pooling stream is upsampled x2 to full resolution,
       concatenated with ``z`` and passes ``num_stem_units`` RUs of
       ``base_channels`` (the first with a 1x1 projection)
       -> (N, 48, H, W).

    Table 1 settings (``(num_units, channels)`` per stage):

    ======  ===================================  ========================
    arch    encoder (at 1/2, 1/4, ...)           decoder (..., 1/4, 1/2)
    ======  ===================================  ========================
    A       3x96, 4x192, 2x384, 2x384            2x192, 2x192, 2x96
    B       3x96, 4x192, 2x384, 2x384, 2x384     2x192, 2x192, 2x192, 2x96
    ======  ===================================  ========================

    The height and width of the input must be divisible by the total
    pooling factor ``2 ** len(encoder)`` (16 for A, 32 for B). Pad the
    input with the data preprocessor: its ``size_divisor`` pads training
    batches and its ``test_cfg=dict(size_divisor=...)`` test images (MMSeg's
    ``SegDataPreProcessor`` keeps the two apart). With sliding-window
    inference (the model's ``test_cfg=dict(mode='slide', ...)``) the
    network sees the windows, so ``test_cfg.crop_size`` must be a multiple
    too. :meth:`check_input` raises a ValueError naming the field to fix,
    before any computation, for an input of another size or with other
    than ``in_channels`` channels, and with ``check_finite`` for NaN / Inf
    values.

    Args:
        arch (str | None): ``'A'`` or ``'B'`` (Table 1), or None to use
            ``encoder`` and ``decoder`` only. Default: 'A'.
        encoder (Sequence[tuple[int, int]] | None): ``(num_units,
            channels)`` of the FRRUs of each encoder stage, from 1/2
            resolution downwards. Overrides the arch setting. Default: None.
        decoder (Sequence[tuple[int, int]] | None): ``(num_units,
            channels)`` of each decoder stage, from the coarsest upwards;
            must have ``len(encoder) - 1`` stages (the last encoder stage is
            the bottleneck). Overrides the arch setting. Default: None.
        in_channels (int): Number of input image channels. Default: 3.
        base_channels (int): Width of the stem and of the final RUs; the
            channels of the returned feature map. Default: 48.
        residual_channels (int): Width of the residual stream. Default: 32.
        num_stem_units (int): Number of RUs after the 5x5 stem convolution
            and at the end of the network. Default: 3.
        align_corners (bool): ``align_corners`` of the bilinear upsampling
            of the pooling stream. Default: False.
        upsample_mode (str): How the pooling stream is upsampled x2:
            ``'bilinear'`` (``F.interpolate`` with ``align_corners``) or
            ``'theano'``, the official code's Theano ``bilinear_upsampling``
            (:func:`~mmseg_refinenet.models.utils.theano_bilinear_upsample`),
            which samples a quarter of an input pixel away from
            ``'bilinear'`` everywhere: use it with weights converted from
            the official release (the ``*-released`` configs).
            Default: 'bilinear'.
        conv_cfg (dict | None): Config of the convolutions. Default: None.
        norm_cfg (dict): Config of the normalisation layers.
            Default: dict(type='BN', requires_grad=True).
        act_cfg (dict): Config of the activations. Default: dict(type='ReLU').
        with_cp (bool): Gradient checkpointing of every RU and FRRU: the
            same gradients for less activation memory. Default: False.
        compact_pooling (bool): In training, the max-poolings of both
            streams (the 2x2 pooling of ``y`` before each encoder stage and
            each FRRU's pooling of ``z``) keep for the backward pass only
            the position of each maximum in its window, one byte per pooled
            value, instead of their input and int64 indices
            (:func:`~mmseg_refinenet.models.utils.window_max_pool2d`; see
            :class:`FRRU`). Same outputs and gradients, less memory.
            Default: True.
        check_finite (bool): Check the input images for NaN and Inf at
            every forward (one device synchronisation, skipped while
            tracing or compiling). Default: False.
        init_cfg (dict | list[dict] | None): Initialisation config.
            Default: Kaiming init of the convolutions, constant 1 / 0 for the
            norm layers.

    Returns (from ``forward``):
        list[Tensor]: One feature map, (N, base_channels, H, W).
    """

    def __init__(self,
                 arch='A',
                 encoder=None,
                 decoder=None,
                 in_channels=3,
                 base_channels=48,
                 residual_channels=32,
                 num_stem_units=3,
                 align_corners=False,
                 upsample_mode='bilinear',
                 conv_cfg=None,
                 norm_cfg=dict(type='BN', requires_grad=True),
                 act_cfg=dict(type='ReLU'),
                 with_cp=False,
                 compact_pooling=True,
                 check_finite=False,
                 init_cfg=FRRN_INIT_CFG):
        owner = type(self).__name__
        check_channels(owner, 'residual_channels', residual_channels)
        check_one_of(owner, 'upsample_mode', upsample_mode, UPSAMPLE_MODES)
        if upsample_mode == 'theano' and align_corners:
            raise ValueError(
                f"{owner}: align_corners=True has no meaning with "
                "upsample_mode='theano' (Theano's upsampling fixes its own "
                'sampling positions); set align_corners=False')
        # 1. stem: 5x5 conv + RUs at full resolution
        super().__init__(arch, encoder, decoder, in_channels, base_channels,
                         num_stem_units, conv_cfg, norm_cfg, act_cfg,
                         with_cp, check_finite, init_cfg)
        self.residual_channels = residual_channels
        self.compact_pooling = compact_pooling
        self.align_corners = align_corners
        self.upsample_mode = upsample_mode
        unit_cfg = dict(
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            with_cp=with_cp)
        frru_cfg = dict(unit_cfg, compact_pooling=compact_pooling)

        # 2. residual stream: 1x1 conv + BN, no activation
        self.residual_conv = ConvModule(
            base_channels,
            residual_channels,
            1,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=None)

        # 3./4. encoder and decoder stages of FRRUs
        channels = base_channels
        scale = 1
        self.encoder_stages = nn.ModuleList()
        for num_units, out_channels in self.encoder:
            scale *= 2
            stage = nn.ModuleList()
            for _ in range(num_units):
                stage.append(
                    FRRU(channels, out_channels, scale, residual_channels,
                         **frru_cfg))
                channels = out_channels
            self.encoder_stages.append(stage)
        self.decoder_stages = nn.ModuleList()
        for num_units, out_channels in self.decoder:
            scale //= 2
            stage = nn.ModuleList()
            for _ in range(num_units):
                stage.append(
                    FRRU(channels, out_channels, scale, residual_channels,
                         **frru_cfg))
                channels = out_channels
            self.decoder_stages.append(stage)

        # 5. end: concat(pooling, residual) + RUs at full resolution
        self.end_units = nn.ModuleList()
        end_channels = channels + residual_channels
        for _ in range(num_stem_units):
            self.end_units.append(
                ResidualUnit(end_channels, base_channels, **unit_cfg))
            end_channels = base_channels

    def _upsample2x(self, y):
        """Upsample the pooling stream x2 (``upsample_mode``)."""
        if self.upsample_mode == 'theano':
            return theano_bilinear_upsample(y, 2)
        return F.interpolate(
            y,
            scale_factor=2,
            mode='bilinear',
            align_corners=self.align_corners)

    def forward(self, x):
        """Forward function.

        Args:
            x (Tensor): Images, (N, in_channels, H, W) with H and W divisible
                by ``self.size_divisor``.

        Returns:
            list[Tensor]: ``[(N, base_channels, H, W)]``.
        """
        x = self._forward_stem(x)
        z = self.residual_conv(x)
        y = x
        for stage in self.encoder_stages:
            y = window_max_pool2d(y, 2, self.compact_pooling)
            for frru in stage:
                y, z = frru(y, z)
        for stage in self.decoder_stages:
            y = self._upsample2x(y)
            for frru in stage:
                y, z = frru(y, z)
        y = self._upsample2x(y)  # back to full resolution, z's size
        x = torch.cat([y, z], dim=1)
        for unit in self.end_units:
            x = unit(x)
        return [x]
