"""The building blocks of RefineNet (Lin et al., CVPR 2017, Sec. 3.2).

A RefineNet block (Fig. 3a) is, in this order:

1. :class:`ResidualConvUnit` (Fig. 3b) on every input path, two per path;
2. :class:`MultiResolutionFusion` (Fig. 3c) of all paths into one map at the
   largest input resolution;
3. :class:`ChainedResidualPooling` (Fig. 3d);
4. output :class:`ResidualConvUnit`\\ s.

:class:`RefineNetBlock` composes them for any number of inputs, resolutions
and widths. Where the paper is vague the official release
(guosheng/refinenet, and its PyTorch port) is followed: RCUs have no batch
norm, the first RCU convolution has a bias and the second has none, the
fusion and CRP convolutions have no bias, and the output of a previous
block enters the next one through the fusion convolution only (no RCUs).

With 1x1 kernels and no RCUs the same classes give the Light-Weight
RefineNet of Nekrasov et al. (BMVC 2018).
"""
from typing import List, Optional, Sequence, Union

import torch.nn as nn
from mmcv.cnn import ConvModule, build_activation_layer
from mmengine.model import BaseModule, ModuleList, Sequential
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from mmseg.models.utils import resize
from mmseg.registry import MODELS

from ..utils.arg_checks import (check_channels, check_non_negative_int,
                                check_odd_kernel_size, check_one_of,
                                check_positive_int)
from ..utils.checks import is_compiling
from ..utils.max_pooling import recomputing_max_pool2d

CRP_ORDERS = ('pool_conv', 'conv_pool')


def _zero_output(module: ConvModule) -> None:
    """Make a residual branch's last ``module`` output zero at initialisation.

    Without a norm layer its convolution is zeroed. With one, the norm's
    scale is zeroed instead (as ResNet's ``zero_init_residual`` zeroes the
    last BN): a zeroed convolution before a norm layer would leave the norm
    normalising zeros, whose gradient is scaled by ``1 / sqrt(eps)``, and
    after the first step the branch would be at full scale. A norm without
    a learnable scale falls back to zeroing the convolution.
    """
    norm = module.norm if module.with_norm else None
    if norm is not None and getattr(norm, 'weight', None) is not None:
        nn.init.zeros_(norm.weight)
    else:
        nn.init.zeros_(module.conv.weight)


@MODELS.register_module()
class ResidualConvUnit(BaseModule):
    """Residual Conv Unit, RCU (RefineNet Sec. 3.2, Fig. 3b).

    Computes ``x + conv2(act(conv1(act(x))))``: a pre-activation residual
    unit without batch normalisation, as in the released models. The first
    convolution has a bias, the second has none (with a ``norm_cfg`` both
    drop the bias and are followed by the norm layer).

    Shapes: ``(N, C, H, W) -> (N, C, H, W)``.

    Args:
        channels (int): Width C of input and output.
        kernel_size (int): Convolution kernel size. Default: 3.
        conv_cfg (dict, optional): Config of the convolution layers.
        norm_cfg (dict, optional): Config of norm layers; None (the paper)
            means no normalisation.
        act_cfg (dict): Config of the activation. Default: ReLU.
        with_cp (bool): Recompute the unit in the backward pass
            (gradient checkpointing) to save memory. Default: False.
        zero_init (bool): Initialise ``conv2`` to zero (with a norm
            layer: its scale) so that the unit starts as the identity.
            Without normalisation, a stack of Kaiming-initialised residual
            units multiplies the activation scale at every unit (tens of
            times over a cascade), which stalls training from scratch.
            Default: False.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 channels: int,
                 kernel_size: int = 3,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: dict = dict(type='ReLU'),
                 with_cp: bool = False,
                 zero_init: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg)
        check_channels('ResidualConvUnit', 'channels', channels)
        check_odd_kernel_size('ResidualConvUnit', 'kernel_size', kernel_size)
        self.with_cp = with_cp
        self.zero_init = zero_init
        # pre-activation order; the first activation must not be in-place,
        # it reads the identity branch.
        self.conv1 = ConvModule(
            channels,
            channels,
            kernel_size,
            padding=kernel_size // 2,
            bias=norm_cfg is None,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            inplace=False,
            order=('act', 'conv', 'norm'))
        self.conv2 = ConvModule(
            channels,
            channels,
            kernel_size,
            padding=kernel_size // 2,
            bias=False,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            inplace=True,
            order=('act', 'conv', 'norm'))
        self._zero_init()

    def _zero_init(self) -> None:
        if self.zero_init:
            _zero_output(self.conv2)

    def init_weights(self) -> None:
        super().init_weights()
        self._zero_init()

    def _inner_forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.conv1(x))

    def forward(self, x: Tensor) -> Tensor:
        if self.with_cp and x.requires_grad:
            return checkpoint(self._inner_forward, x, use_reentrant=False)
        return self._inner_forward(x)


@MODELS.register_module()
class MultiResolutionFusion(BaseModule):
    """Multi-resolution fusion (RefineNet Sec. 3.2, Fig. 3c).

    Each input path ``i`` goes through one convolution (no bias, no
    activation) to ``out_channels`` (by default the smallest input width),
    is upsampled bilinearly to the largest input resolution, and all paths
    are summed. A single input passes through unchanged. With
    ``path_convs``, paths can skip their convolution and enter the sum as
    they are (Light-Weight RefineNet on MobileNetV2 sums its adapted
    backbone features this way).

    Shapes: a list of ``(N, C_i, H_i, W_i)`` -> ``(N, C_out, H_max, W_max)``
    where ``(H_max, W_max)`` is the size of the input with most pixels.

    Args:
        in_channels (Sequence[int]): Width of each input path.
        out_channels (int, optional): Fused width. Default: the smallest of
            ``in_channels``.
        kernel_size (int): Kernel of the per-path convolutions: 3 in
            RefineNet, 1 in Light-Weight RefineNet. Default: 3.
        conv_cfg (dict, optional): Config of the convolution layers.
        norm_cfg (dict, optional): Config of norm layers. Default: None.
        align_corners (bool): ``align_corners`` of the bilinear upsampling.
            Default: False.
        path_convs (Sequence[bool], optional): For each path, whether it has
            its convolution; a path without one must already be
            ``out_channels`` wide. Default: every path has one.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: Optional[int] = None,
                 kernel_size: int = 3,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = None,
                 align_corners: bool = False,
                 path_convs: Optional[Sequence[bool]] = None,
                 init_cfg=None):
        super().__init__(init_cfg)
        in_channels = list(in_channels)
        if not in_channels:
            raise ValueError('MultiResolutionFusion needs at least one input '
                             'path, got in_channels=[]')
        for i, c in enumerate(in_channels):
            check_channels('MultiResolutionFusion', f'in_channels[{i}]', c)
        check_odd_kernel_size('MultiResolutionFusion', 'kernel_size',
                              kernel_size)
        if out_channels is None:
            out_channels = min(in_channels)
        check_channels('MultiResolutionFusion', 'out_channels',
                       out_channels)
        if len(in_channels) == 1 and out_channels != in_channels[0]:
            raise ValueError(
                'A single-input MultiResolutionFusion passes its input '
                f'through unchanged, so out_channels ({out_channels}) must '
                f'equal in_channels[0] ({in_channels[0]}) or be None')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.align_corners = align_corners
        if path_convs is None:
            path_convs = [True] * len(in_channels)
        path_convs = [bool(p) for p in path_convs]
        if len(path_convs) != len(in_channels):
            raise ValueError(
                f'MultiResolutionFusion path_convs has {len(path_convs)} '
                f'entries but the fusion has {len(in_channels)} inputs; give '
                'one flag per input')
        for i, (c, with_conv) in enumerate(zip(in_channels, path_convs)):
            if not with_conv and c != out_channels:
                raise ValueError(
                    f'MultiResolutionFusion input {i} has no convolution '
                    f'(path_convs[{i}]=False), so it must be out_channels='
                    f'{out_channels} wide, but in_channels[{i}]={c}. Give '
                    'it a convolution or change the widths')
        # a path without convolution keeps its index (nn.Identity, no
        # parameters), so the keys of the others do not depend on it
        self.convs = nn.ModuleList()
        if len(in_channels) > 1:
            for c, with_conv in zip(in_channels, path_convs):
                self.convs.append(
                    ConvModule(
                        c,
                        out_channels,
                        kernel_size,
                        padding=kernel_size // 2,
                        bias=False,
                        conv_cfg=conv_cfg,
                        norm_cfg=norm_cfg,
                        act_cfg=None) if with_conv else nn.Identity())

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        if len(inputs) != len(self.in_channels):
            raise ValueError(
                f'MultiResolutionFusion was built for {len(self.in_channels)}'
                f' inputs but got {len(inputs)}')
        if len(inputs) == 1:
            return inputs[0]
        # The input with most pixels (the first among equals). A plain loop,
        # not max(..., key=...): TorchDynamo cannot trace max with a key and
        # would break the graph here, once per block.
        out_size = inputs[0].shape[2:]
        for x in inputs[1:]:
            if x.shape[2] * x.shape[3] > out_size[0] * out_size[1]:
                out_size = x.shape[2:]
        out = None
        for conv, x in zip(self.convs, inputs):
            x = conv(x)
            if x.shape[2:] != out_size:
                x = resize(
                    x,
                    size=out_size,
                    mode='bilinear',
                    align_corners=self.align_corners)
            out = x if out is None else out + x
        return out


@MODELS.register_module()
class ChainedResidualPooling(BaseModule):
    """Chained residual pooling, CRP (RefineNet Sec. 3.2, Fig. 3d).

    ``x = act(x)``; then a chain of ``num_stages`` stages, each a
    ``pool_size`` x ``pool_size`` stride-1 max-pooling and a convolution
    (no bias), each stage fed by the previous stage's output; the result is
    ``x + stage_1 + ... + stage_n``, so the block collects context from
    growing windows with learned weights (Eq. in Sec. 3.2).

    ``order='pool_conv'`` follows the paper's figure, ``'conv_pool'`` the
    "improved pooling" of the later released models.

    Shapes: ``(N, C, H, W) -> (N, C, H, W)``.

    Args:
        channels (int): Width C.
        num_stages (int): Number of pooling stages (paper: 2; Person-Part
            and the released models: 4). Default: 4.
        kernel_size (int): Convolution kernel size (3 in RefineNet, 1 in
            Light-Weight RefineNet). Default: 3.
        pool_size (int): Max-pooling window. Default: 5.
        order (str): ``'pool_conv'`` or ``'conv_pool'``. Default:
            ``'pool_conv'``.
        conv_cfg (dict, optional): Config of the convolution layers.
        norm_cfg (dict, optional): Config of norm layers. Default: None.
        act_cfg (dict): The leading activation. Default: ReLU.
        zero_init (bool): Initialise the stage convolutions (with a norm
            layer: their scales) to zero, so the block starts as ``act(x)``
            (see :class:`ResidualConvUnit`). Default: False.
        recompute_pooling (bool): In training, recompute the max-poolings
            in the backward pass instead of keeping what they produce.
            With ``order='pool_conv'`` and no norm layer, a stage
            ``conv(pool(s))`` keeps only its input ``s`` (the previous
            stage's output, kept for the next stage anyway;
            ``torch.utils.checkpoint``): the backward pass recomputes the
            pooled map, which the convolution's backward reads, and the
            argmax indices, and stops before the convolution (the
            checkpoint's early stop, on by default in PyTorch), so no
            convolution runs twice. Otherwise the pooling alone is
            recomputed (:func:`recomputing_max_pool2d`), which drops its
            int64 indices (twice the bytes of the pooled map in fp32).
            Either way outputs and gradients are unchanged; the memory
            saved is measured in ``docs/benchmarks.md``.
            Training under ``torch.compile``, the poolings go through
            :func:`recomputing_max_pool2d` whatever this flag (Inductor
            miscompiled their backward; see
            :mod:`~mmseg_refinenet.models.utils.max_pooling`).
            Default: True.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 channels: int,
                 num_stages: int = 4,
                 kernel_size: int = 3,
                 pool_size: int = 5,
                 order: str = 'pool_conv',
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: dict = dict(type='ReLU'),
                 zero_init: bool = False,
                 recompute_pooling: bool = True,
                 init_cfg=None):
        super().__init__(init_cfg)
        self.zero_init = zero_init
        self.recompute_pooling = recompute_pooling
        owner = 'ChainedResidualPooling'
        check_channels(owner, 'channels', channels)
        check_positive_int(
            owner, 'num_stages', num_stages,
            hint='to remove the block, switch CRP off (with_crp=False)')
        check_odd_kernel_size(owner, 'kernel_size', kernel_size)
        check_odd_kernel_size(owner, 'pool_size', pool_size)
        self.order = check_one_of(owner, 'order', order, CRP_ORDERS)
        if act_cfg is not None:
            # not in-place: the activated map is also the identity branch
            act_cfg = dict(act_cfg)
            if act_cfg['type'] in ('ReLU', 'LeakyReLU', 'ReLU6', 'ELU'):
                act_cfg['inplace'] = False
            self.act = build_activation_layer(act_cfg)
        else:
            self.act = None
        self.pool = nn.MaxPool2d(pool_size, stride=1, padding=pool_size // 2)
        self.convs = nn.ModuleList(
            ConvModule(
                channels,
                channels,
                kernel_size,
                padding=kernel_size // 2,
                bias=False,
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg,
                act_cfg=None) for _ in range(num_stages))
        self._zero_init()

    def _zero_init(self) -> None:
        if self.zero_init:
            for conv in self.convs:
                _zero_output(conv)

    def init_weights(self) -> None:
        super().init_weights()
        self._zero_init()

    @property
    def num_stages(self) -> int:
        return len(self.convs)

    def _pool(self, x: Tensor, recompute: bool) -> Tensor:
        if recompute or (x.requires_grad and is_compiling()):
            # keeps x (read by the pooling's backward in any case), not the
            # int64 argmax indices. Under torch.compile always: Inductor
            # miscompiles the backward of these chained poolings, which
            # this pooling hides from it (see models/utils/max_pooling.py)
            return recomputing_max_pool2d(x, self.pool.kernel_size)
        return self.pool(x)

    def _pool_conv(self, conv: nn.Module, x: Tensor) -> Tensor:
        return conv(self._pool(x, recompute=False))

    def _stage(self, conv: nn.Module, x: Tensor) -> Tensor:
        """One pooling stage, (N, C, H, W) -> (N, C, H, W)."""
        recompute = self.recompute_pooling and x.requires_grad
        if self.order == 'pool_conv':
            if recompute and not conv.with_norm:
                # keeps x alone; the backward pass recomputes the pooling
                # and stops before the convolution. Not with a norm layer:
                # a norm saves the convolution's output, which would then
                # be recomputed, and its running statistics updated twice.
                return checkpoint(
                    self._pool_conv, conv, x, use_reentrant=False)
            return conv(self._pool(x, recompute))
        return self._pool(conv(x), recompute)

    def forward(self, x: Tensor) -> Tensor:
        if self.act is not None:
            x = self.act(x)
        out = x
        stage = x
        for conv in self.convs:
            stage = self._stage(conv, stage)
            out = out + stage
        return out


@MODELS.register_module()
class RefineNetBlock(BaseModule):
    """One RefineNet block (RefineNet Sec. 3.2, Fig. 3a).

    For input paths ``x_1 .. x_k`` of any widths and resolutions:
    ``num_input_rcus[i]`` RCUs on path ``i``; multi-resolution fusion to the
    largest resolution and ``out_channels``; chained residual pooling
    (optional: the Table 2 ablation switches it off); ``num_output_rcus``
    output RCUs.

    Shapes: a list of ``(N, C_i, H_i, W_i)`` -> ``(N, C_out, H_max, W_max)``.

    Args:
        in_channels (Sequence[int]): Width of each input path.
        out_channels (int, optional): Width after fusion. Default: the
            smallest of ``in_channels``.
        num_input_rcus (int | Sequence[int]): RCUs on each input path, one
            number for all paths or one per path (0 for the output of a
            previous block, as in the released models). Default: 2.
        num_output_rcus (int): RCUs after CRP. Default: 3.
        with_crp (bool): Whether the block has chained residual pooling.
            Default: True.
        crp_stages (int): Stages of the CRP. Default: 4.
        crp_order (str): ``'pool_conv'`` or ``'conv_pool'``.
        crp_pool_size (int): CRP pooling window. Default: 5.
        rcu_kernel_size (int): RCU kernel. Default: 3.
        fusion_kernel_size (int): Fusion kernel. Default: 3.
        crp_kernel_size (int): CRP kernel. Default: 3.
        conv_cfg (dict, optional): Config of the convolution layers.
        norm_cfg (dict, optional): Norm config of all convolutions;
            None (the paper) means none.
        act_cfg (dict): Activation config. Default: ReLU.
        align_corners (bool): Of the fusion's upsampling. Default: False.
        with_cp (bool): Gradient checkpointing of the RCUs. Default: False.
        zero_init_residual (bool): Start every RCU and the CRP as the
            identity (zero-initialised last convolutions). Default: False.
        crp_recompute_pooling (bool): ``recompute_pooling`` of the CRP:
            recompute its max-poolings in the backward pass instead of
            keeping the pooled maps and their int64 argmax indices.
            Default: True.
        fusion_path_convs (Sequence[bool], optional): ``path_convs`` of the
            fusion: which inputs get a fusion convolution. Default: all.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: Optional[int] = None,
                 num_input_rcus: Union[int, Sequence[int]] = 2,
                 num_output_rcus: int = 3,
                 with_crp: bool = True,
                 crp_stages: int = 4,
                 crp_order: str = 'pool_conv',
                 crp_pool_size: int = 5,
                 rcu_kernel_size: int = 3,
                 fusion_kernel_size: int = 3,
                 crp_kernel_size: int = 3,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: dict = dict(type='ReLU'),
                 align_corners: bool = False,
                 with_cp: bool = False,
                 zero_init_residual: bool = False,
                 crp_recompute_pooling: bool = True,
                 fusion_path_convs: Optional[Sequence[bool]] = None,
                 init_cfg=None):
        super().__init__(init_cfg)
        in_channels = list(in_channels)
        if isinstance(num_input_rcus, int):
            num_input_rcus = [num_input_rcus] * len(in_channels)
        num_input_rcus = list(num_input_rcus)
        if len(num_input_rcus) != len(in_channels):
            raise ValueError(
                f'RefineNetBlock num_input_rcus has {len(num_input_rcus)} '
                f'entries but the block has {len(in_channels)} inputs; give '
                'one count per input or a single int')
        check_non_negative_int('RefineNetBlock', 'num_output_rcus',
                               num_output_rcus)
        for i, n in enumerate(num_input_rcus):
            check_non_negative_int('RefineNetBlock', f'num_input_rcus[{i}]',
                                   n)
        if with_crp and (not isinstance(crp_stages, int) or crp_stages < 1):
            raise ValueError(
                f'crp_stages={crp_stages!r} with with_crp=True: chained '
                'residual pooling needs at least 1 stage. Set crp_stages to '
                'a positive integer (the paper uses 2 or 4), or set '
                'with_crp=False to remove CRP')

        rcu_kwargs = dict(
            kernel_size=rcu_kernel_size,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            with_cp=with_cp,
            zero_init=zero_init_residual)
        # MMEngine's containers, not torch's: BaseModule.init_weights only
        # reaches children that have an init_weights of their own, and the
        # RCUs' must run (it re-applies their zero initialisation after any
        # init_cfg of an enclosing module)
        self.input_rcus = ModuleList(
            Sequential(*(ResidualConvUnit(c, **rcu_kwargs)
                         for _ in range(n)))
            for c, n in zip(in_channels, num_input_rcus))
        self.fusion = MultiResolutionFusion(
            in_channels,
            out_channels,
            kernel_size=fusion_kernel_size,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            align_corners=align_corners,
            path_convs=fusion_path_convs)
        self.in_channels = in_channels
        self.out_channels = self.fusion.out_channels
        self.crp = ChainedResidualPooling(
            self.out_channels,
            num_stages=crp_stages,
            kernel_size=crp_kernel_size,
            pool_size=crp_pool_size,
            order=crp_order,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            zero_init=zero_init_residual,
            recompute_pooling=crp_recompute_pooling) if with_crp else None
        self.output_rcus = Sequential(
            *(ResidualConvUnit(self.out_channels, **rcu_kwargs)
              for _ in range(num_output_rcus)))

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        if len(inputs) != len(self.in_channels):
            raise ValueError(
                f'RefineNetBlock was built for {len(self.in_channels)} '
                f'inputs but got {len(inputs)}')
        paths: List[Tensor] = [
            rcus(x) for rcus, x in zip(self.input_rcus, inputs)
        ]
        x = self.fusion(paths)
        if self.crp is not None:
            x = self.crp(x)
        return self.output_rcus(x)


__all__ = [
    'ResidualConvUnit', 'MultiResolutionFusion', 'ChainedResidualPooling',
    'RefineNetBlock'
]
