"""Building blocks of Full-Resolution Residual Networks.

Pohlen et al., "Full-Resolution Residual Networks for Semantic Segmentation
in Street Scenes", CVPR 2017 (https://arxiv.org/abs/1611.08323).

* :class:`ResidualUnit` (RU): the residual unit of Sec. 3.1 / Fig. 2a.
* :class:`FRRU`: the full-resolution residual unit of Sec. 3.2, Fig. 3 and
  Eq. (6)-(7).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule

from mmseg.registry import MODELS
from ..utils.arg_checks import check_channels, check_positive_int
from ..utils.max_pooling import window_max_pool2d


@MODELS.register_module()
class ResidualUnit(BaseModule):
    """Residual unit (RU) of FRRN, Sec. 3.1 and Fig. 2a of the paper.

    Computes ``y = shortcut(x) + BN(conv3x3(ReLU(BN(conv3x3(x)))))``: two
    3x3 convolutions with batch normalisation, a ReLU between them and none
    after the sum (the RU of He et al. as used in the official FRRN code).
    The shortcut is the identity when ``in_channels == out_channels`` and
    otherwise a linear 1x1 projection without bias or normalisation.

    Shapes: ``(N, in_channels, H, W) -> (N, out_channels, H, W)``.

    Args:
        in_channels (int): Number of input channels.
        out_channels (int): Number of output channels.
        conv_cfg (dict | None): Config of the convolutions. Default: None.
        norm_cfg (dict): Config of the normalisation layers.
            Default: dict(type='BN', requires_grad=True).
        act_cfg (dict): Config of the activation between the two convs.
            Default: dict(type='ReLU').
        with_cp (bool): Recompute the unit in the backward pass
            (gradient checkpointing) to save memory. Default: False.
        init_cfg (dict | list[dict] | None): Initialisation config.
            Default: None.
    """

    def __init__(self,
                 in_channels,
                 out_channels,
                 conv_cfg=None,
                 norm_cfg=dict(type='BN', requires_grad=True),
                 act_cfg=dict(type='ReLU'),
                 with_cp=False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        check_channels('ResidualUnit', 'in_channels', in_channels)
        check_channels('ResidualUnit', 'out_channels', out_channels)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.with_cp = with_cp
        self.conv1 = ConvModule(
            in_channels,
            out_channels,
            3,
            padding=1,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg)
        self.conv2 = ConvModule(
            out_channels,
            out_channels,
            3,
            padding=1,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=None)
        if in_channels != out_channels:
            self.shortcut = ConvModule(
                in_channels,
                out_channels,
                1,
                bias=False,
                conv_cfg=conv_cfg,
                norm_cfg=None,
                act_cfg=None)
        else:
            self.shortcut = nn.Identity()

    def _forward(self, x):
        return self.shortcut(x) + self.conv2(self.conv1(x))

    def forward(self, x):
        """Apply the unit to ``x`` of shape (N, in_channels, H, W)."""
        if self.with_cp and torch.is_grad_enabled():
            return cp.checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)


@MODELS.register_module()
class FRRU(BaseModule):
    """Full-resolution residual unit, Sec. 3.2, Fig. 3 and Eq. (6)-(7).

    The unit couples the pooling stream ``y`` (at ``1 / scale`` of the full
    resolution) and the residual stream ``z`` (at full resolution):

    1. ``z`` is max-pooled by ``scale`` (kernel = stride = ``scale``) to the
       resolution of ``y`` and concatenated with it;
    2. two 3x3 conv-BN-ReLU layers give the new pooling stream
       ``y_n = H(y, z)`` (Eq. 6);
    3. a 1x1 convolution with bias maps ``y_n`` to ``residual_channels``,
       nearest-neighbour upsampling by ``scale`` (pixel repetition) brings it
       back to full resolution and it is added to ``z``:
       ``z_n = z + G(y, z)`` (Eq. 7).

    Shapes: ``y``: (N, in_channels, H / scale, W / scale), ``z``:
    (N, residual_channels, H, W) -> ``y_n``: (N, out_channels, H / scale,
    W / scale), ``z_n``: (N, residual_channels, H, W).

    Args:
        in_channels (int): Channels of the incoming pooling stream.
        out_channels (int): Channels of the outgoing pooling stream (the
            width of the unit, e.g. 96 in "FRRU 96" of Table 1).
        scale (int): Pooling factor of the pooling stream relative to the
            residual stream, e.g. 4 for a unit working at 1/4 resolution.
        residual_channels (int): Channels of the residual stream. Default: 32.
        conv_cfg (dict | None): Config of the convolutions. Default: None.
        norm_cfg (dict): Config of the normalisation layers.
            Default: dict(type='BN', requires_grad=True).
        act_cfg (dict): Config of the activations. Default: dict(type='ReLU').
        with_cp (bool): Recompute the unit in the backward pass
            (gradient checkpointing) to save memory. Default: False.
        compact_pooling (bool): In training, pool ``z`` with
            :func:`~mmseg_refinenet.models.utils.window_max_pool2d`, which
            keeps for the backward pass only the position of each maximum
            in its window (one byte per pooled value), instead of
            ``F.max_pool2d``, which keeps the full-resolution ``z`` itself
            and int64 indices, although nothing else in the unit needs
            ``z`` once ``z + r`` is computed. With ``with_cp`` the pooling
            then runs outside the checkpoint, which keeps the pooled ``z``
            instead of ``z``. Same outputs and gradients; the memory saved
            is measured in ``docs/benchmarks.md``. Default: True.
        init_cfg (dict | list[dict] | None): Initialisation config.
            Default: None.
    """

    def __init__(self,
                 in_channels,
                 out_channels,
                 scale,
                 residual_channels=32,
                 conv_cfg=None,
                 norm_cfg=dict(type='BN', requires_grad=True),
                 act_cfg=dict(type='ReLU'),
                 with_cp=False,
                 compact_pooling=True,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        for name, value in (('in_channels', in_channels),
                            ('out_channels', out_channels),
                            ('residual_channels', residual_channels)):
            check_channels('FRRU', name, value)
        check_positive_int('FRRU', 'scale', scale)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.scale = scale
        self.residual_channels = residual_channels
        self.with_cp = with_cp
        self.compact_pooling = compact_pooling
        self.conv1 = ConvModule(
            in_channels + residual_channels,
            out_channels,
            3,
            padding=1,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg)
        self.conv2 = ConvModule(
            out_channels,
            out_channels,
            3,
            padding=1,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg)
        self.conv_res = ConvModule(
            out_channels,
            residual_channels,
            1,
            bias=True,
            conv_cfg=conv_cfg,
            norm_cfg=None,
            act_cfg=None)

    def _pool(self, z):
        """``z`` max-pooled by ``scale``: (N, C_res, H / s, W / s)."""
        return window_max_pool2d(z, self.scale, self.compact_pooling)

    def _transform(self, y, z_pooled):
        """Eq. (6) and the residual of Eq. (7) before the sum.

        Returns ``y_n`` (N, out_channels, H / s, W / s) and the residual
        ``G(y, z)`` upsampled to (N, residual_channels, H, W).
        """
        y = self.conv2(self.conv1(torch.cat([y, z_pooled], dim=1)))
        r = self.conv_res(y)
        if self.scale > 1:
            r = F.interpolate(r, scale_factor=self.scale, mode='nearest')
        return y, r

    def _forward(self, y, z):
        y, r = self._transform(y, self._pool(z))
        return y, z + r

    def forward(self, y, z):
        """Return the new pooling stream and the new residual stream.

        Args:
            y (Tensor): Pooling stream, (N, in_channels, H / s, W / s).
            z (Tensor): Residual stream, (N, residual_channels, H, W).

        Returns:
            tuple[Tensor, Tensor]: ``(y_n, z_n)`` as in Eq. (6)-(7).
        """
        if not (self.with_cp and torch.is_grad_enabled()):
            return self._forward(y, z)
        if not self.compact_pooling:
            return cp.checkpoint(self._forward, y, z, use_reentrant=False)
        # The compact pooling keeps one byte per pooled value, so pooling
        # outside the checkpoint lets it keep the pooled z instead of the
        # full-resolution z (the sum z + r keeps nothing).
        y, r = cp.checkpoint(
            self._transform, y, self._pool(z), use_reentrant=False)
        return y, z + r
