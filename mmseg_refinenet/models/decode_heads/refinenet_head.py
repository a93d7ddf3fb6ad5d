"""The RefineNet decode head (Lin et al., CVPR 2017, Sec. 3).

One configurable head covers the whole family: the cascade of RefineNet
blocks is data (``cascade``), not code, so the 4-cascaded (Fig. 2c),
2-cascaded (Fig. 7b), single-block (Fig. 7a) and 2-scale (Fig. 7c)
RefineNets, the CRP ablation (Table 2) and Light-Weight RefineNet
(Nekrasov et al., BMVC 2018), on ResNets and on MobileNetV2, are all
configs of :class:`RefineNetHead`.
"""
from typing import List, Optional, Sequence

import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import ModuleList
from torch import Tensor

from mmseg.registry import MODELS
from ..blocks import RefineNetBlock
from ..utils.arg_checks import check_channels, check_odd_kernel_size
from .checked_decode_head import CheckedDecodeHead


@MODELS.register_module()
class RefineNetHead(CheckedDecodeHead):
    """RefineNet: multi-path refinement of backbone features.

    Data flow, with ``n`` selected backbone features::

        f_i   = adapt_i(dropout_i(x_i))                       i = 0..n-1
        y_1   = block_1([f_j for j in cascade[0]])
        y_b   = block_b([f_j for j in cascade[b-1]] + [y_{b-1}])
        logits = conv_seg(dropout(y_last))

    ``_forward_feature`` returns ``y_last`` (``(N, channels, H/4, W/4)``
    for a ResNet), the refined features before the classifier, for reuse
    by other heads; ``forward`` is ``cls_seg(_forward_feature(inputs))``,
    as in MMSeg's heads.

    ``adapt_i`` is a convolution without bias (3x3; 1x1 for Light-Weight
    RefineNet) to ``adapt_channels[i]``. Every backbone path gets
    ``num_input_rcus`` RCUs inside its block; the previous block's output
    enters through the fusion convolution only, as in the released models.
    Each block fuses to the smallest width among its inputs, so the last
    block's width must equal ``channels``. The logits come out at the
    resolution of the largest input of the last block (1/4 of the image for
    a ResNet); MMSeg resizes them to the image.

    The default is the 4-cascaded RefineNet of Fig. 2c on a 4-stage
    backbone: ``cascade=((3,), (2,), (1,), (0,))``, widths 256 and 512 for
    the deepest path, 2 input RCUs, CRP with 4 stages, 3 output RCUs,
    dropout 0.5 and a 3x3 classifier: with a torchvision ResNet-101 this is
    the released RefineNet-101 layer for layer.

    A block may take several backbone paths, also at equal resolution:
    Light-Weight RefineNet on MobileNetV2 (``configs/_base_/models/
    lw_refinenet_mobilenet_v2.py``) fuses six levels in four blocks,
    ``cascade=((5, 4), (3, 2), (1,), (0,))``, sums the adapted paths without
    fusion convolutions (``input_fusion_convs=False``), has no RCUs and
    applies ReLU6 (``act_cfg``) before each CRP.

    Args:
        adapt_channels (Sequence[int], optional): Width of each adapted
            path, in the order of ``in_index``. Default: ``channels`` for
            every path and ``2 * channels`` for the last (deepest) one.
        adapt_kernel_size (int): Kernel of the adaptation convs. Default: 3.
        cascade (Sequence[Sequence[int]], optional): For each block in
            order, the positions (in ``in_index`` order) of the backbone
            paths it takes; every block after the first also takes the
            previous block's output. Every path must be used exactly once.
            Default: one block per path, deepest first.
        input_fusion_convs (bool): Whether each backbone path has its own
            convolution in the multi-resolution fusion of its block (Fig.
            3c). False: the adapted paths enter the sum as they are (their
            ``adapt_channels`` must then be the block's width); the previous
            block's output always has its fusion convolution. Default: True.
        num_input_rcus (int): RCUs per backbone path. Default: 2.
        num_output_rcus (int): RCUs at the end of each block. Default: 3.
        with_crp (bool): Chained residual pooling on/off. Default: True.
        crp_stages (int): Stages of each CRP. Default: 4.
        crp_order (str): ``'pool_conv'`` (paper figure) or ``'conv_pool'``.
        crp_pool_size (int): CRP pooling window. Default: 5.
        rcu_kernel_size (int): Default: 3.
        fusion_kernel_size (int): Default: 3.
        crp_kernel_size (int): Default: 3.
        classifier_kernel_size (int): Kernel of ``conv_seg``. Default: 3.
        input_dropout_ratio (float): Dropout on selected backbone features
            before adaptation; the official training code uses 0.5 on the
            two deepest. Default: 0 (off).
        input_dropout_index (Sequence[int]): Positions (in ``in_index``
            order, negative allowed) that get the input dropout.
            Default: (-2, -1).
        with_cp (bool): Gradient checkpointing of the RCUs. Default: False.
        zero_init_residual (bool): Start every RCU and CRP as the identity
            (zero-initialised last convolution of each residual branch).
            The head has no normalisation: with the usual Kaiming
            initialisation the activation scale grows about tenfold per
            block (a logit scale in the hundreds for a 4-cascade), and
            training from scratch stalls. Has no effect on loaded weights.
            Default: True.
        crp_recompute_pooling (bool): Recompute the CRP max-poolings in
            the backward pass instead of keeping the pooled maps and their
            int64 argmax indices (see :class:`ChainedResidualPooling`).
            Default: True.
        check_finite (bool): Check the backbone features for NaN and Inf
            at every forward (opt-in: one device synchronisation per step;
            see :class:`CheckedDecodeHead`). Default: False.
        check_labels (bool): Check the labels in the loss (opt-in, as
            ``check_finite``). Default: False.
        **kwargs: :class:`BaseDecodeHead` arguments (``in_channels``,
            ``channels``, ``in_index``, ``num_classes``, ``dropout_ratio``
            (default here 0.5, element-wise as in the released models,
            where MMSeg's heads drop whole channels), ``norm_cfg`` (None,
            as in the paper), ``act_cfg`` (of the RCUs and of the
            activation before each CRP; default ReLU), ``align_corners``,
            ``loss_decode``...).

    Bad input fails before any computation, naming the field: the
    arguments at build time and the backbone's outputs (``in_index`` range,
    widths against ``in_channels``) at every forward; with the opt-in
    checks also NaN / Inf features and labels outside ``[0, num_classes)``
    other than ``ignore_index``; see :class:`CheckedDecodeHead`.
    """

    def __init__(self,
                 adapt_channels: Optional[Sequence[int]] = None,
                 adapt_kernel_size: int = 3,
                 cascade: Optional[Sequence[Sequence[int]]] = None,
                 input_fusion_convs: bool = True,
                 num_input_rcus: int = 2,
                 num_output_rcus: int = 3,
                 with_crp: bool = True,
                 crp_stages: int = 4,
                 crp_order: str = 'pool_conv',
                 crp_pool_size: int = 5,
                 rcu_kernel_size: int = 3,
                 fusion_kernel_size: int = 3,
                 crp_kernel_size: int = 3,
                 classifier_kernel_size: int = 3,
                 input_dropout_ratio: float = 0.0,
                 input_dropout_index: Sequence[int] = (-2, -1),
                 with_cp: bool = False,
                 zero_init_residual: bool = True,
                 crp_recompute_pooling: bool = True,
                 dropout_ratio: float = 0.5,
                 **kwargs):
        kwargs.setdefault('input_transform', 'multiple_select')
        if kwargs['input_transform'] != 'multiple_select':
            raise ValueError(
                "RefineNetHead refines several backbone levels and needs "
                "input_transform='multiple_select', got "
                f"{kwargs['input_transform']!r}")
        in_channels = kwargs.get('in_channels')
        in_index = kwargs.get('in_index')
        if not isinstance(in_channels, (list, tuple)) or not isinstance(
                in_index, (list, tuple)) or len(in_channels) != len(in_index):
            raise ValueError(
                'RefineNetHead needs in_channels and in_index as lists of '
                'the same length (one entry per backbone level), got '
                f'in_channels={in_channels!r}, in_index={in_index!r}')
        super().__init__(dropout_ratio=dropout_ratio, **kwargs)
        # element-wise, as in the released models (guosheng/refinenet's
        # DropOut layer and its PyTorch port), where BaseDecodeHead's
        # Dropout2d would drop whole channels
        self.dropout = nn.Dropout(dropout_ratio) if dropout_ratio > 0 \
            else None
        num_inputs = len(self.in_channels)

        if adapt_channels is None:
            adapt_channels = [self.channels] * (num_inputs - 1) + [
                2 * self.channels
            ]
        adapt_channels = list(adapt_channels)
        if len(adapt_channels) != num_inputs:
            raise ValueError(
                f'adapt_channels has {len(adapt_channels)} entries but the '
                f'head takes {num_inputs} inputs (in_index={self.in_index}); '
                'give one width per input')
        for i, c in enumerate(adapt_channels):
            check_channels('RefineNetHead', f'adapt_channels[{i}]', c)

        if cascade is None:
            cascade = [[i] for i in reversed(range(num_inputs))]
        self.cascade = self._check_cascade(cascade, num_inputs)

        if not 0 <= input_dropout_ratio < 1:
            raise ValueError('input_dropout_ratio must be in [0, 1), got '
                             f'{input_dropout_ratio!r}')
        self.input_dropout_index = []
        for i in input_dropout_index:
            if not -num_inputs <= i < num_inputs:
                raise ValueError(
                    f'input_dropout_index names input {i}, but the head has '
                    f'{num_inputs} inputs (valid: {-num_inputs}..'
                    f'{num_inputs - 1})')
            self.input_dropout_index.append(i % num_inputs)
        self.input_dropout = nn.Dropout(
            input_dropout_ratio) if input_dropout_ratio > 0 else None

        self.adapt_convs = ModuleList(
            ConvModule(
                c_in,
                c_out,
                adapt_kernel_size,
                padding=adapt_kernel_size // 2,
                bias=False,
                conv_cfg=self.conv_cfg,
                norm_cfg=self.norm_cfg,
                act_cfg=None)
            for c_in, c_out in zip(self.in_channels, adapt_channels))

        # MMEngine's ModuleList, so that init_weights reaches the blocks
        # (and their zero-initialised RCUs and CRPs) after the head's own
        # init_cfg
        self.blocks = ModuleList()
        prev_channels = None
        for paths in self.cascade:
            block_in = [adapt_channels[i] for i in paths]
            block_rcus = [num_input_rcus] * len(paths)
            path_convs = [input_fusion_convs] * len(paths)
            if prev_channels is not None:
                block_in.append(prev_channels)
                block_rcus.append(0)
                path_convs.append(True)
            block = RefineNetBlock(
                block_in,
                num_input_rcus=block_rcus,
                num_output_rcus=num_output_rcus,
                with_crp=with_crp,
                crp_stages=crp_stages,
                crp_order=crp_order,
                crp_pool_size=crp_pool_size,
                rcu_kernel_size=rcu_kernel_size,
                fusion_kernel_size=fusion_kernel_size,
                crp_kernel_size=crp_kernel_size,
                conv_cfg=self.conv_cfg,
                norm_cfg=self.norm_cfg,
                act_cfg=self.act_cfg,
                align_corners=self.align_corners,
                with_cp=with_cp,
                zero_init_residual=zero_init_residual,
                crp_recompute_pooling=crp_recompute_pooling,
                fusion_path_convs=path_convs)
            self.blocks.append(block)
            prev_channels = block.out_channels
        if prev_channels != self.channels:
            raise ValueError(
                f'channels={self.channels}, but the last RefineNet block '
                f'outputs {prev_channels} channels (the smallest width among '
                f'its inputs, from adapt_channels={adapt_channels}). Set '
                f'channels={prev_channels} or change adapt_channels')

        if classifier_kernel_size != 1:
            check_odd_kernel_size('RefineNetHead', 'classifier_kernel_size',
                                  classifier_kernel_size)
            self.conv_seg = nn.Conv2d(
                self.channels,
                self.out_channels,
                classifier_kernel_size,
                padding=classifier_kernel_size // 2)

    @staticmethod
    def _check_cascade(cascade, num_inputs: int) -> List[List[int]]:
        """Validate ``cascade`` against the number of selected inputs."""
        blocks = []
        used = {}
        if len(cascade) == 0:
            raise ValueError('cascade is empty: list at least one block, e.g. '
                             'cascade=((3,), (2,), (1,), (0,))')
        for b, paths in enumerate(cascade):
            if isinstance(paths, int):
                paths = [paths]
            paths = list(paths)
            if not paths:
                raise ValueError(
                    f'cascade[{b}] is empty: every block must take at least '
                    'one backbone input')
            for i in paths:
                if not isinstance(i, int) or not 0 <= i < num_inputs:
                    raise ValueError(
                        f'cascade[{b}] names input {i!r}, but the head has '
                        f'{num_inputs} inputs (positions 0..{num_inputs - 1} '
                        'in in_index order). Fix cascade or add the level to '
                        'in_index/in_channels')
                if i in used:
                    raise ValueError(
                        f'cascade[{b}] takes input {i}, which cascade['
                        f'{used[i]}] already takes; each input feeds one '
                        'block')
                used[i] = b
            blocks.append(paths)
        unused = sorted(set(range(num_inputs)) - set(used))
        if unused:
            raise ValueError(
                f'inputs {unused} are selected by in_index but no block of '
                f'cascade={[tuple(p) for p in blocks]} takes them; add them '
                'to a block or remove them from in_index/in_channels')
        return blocks

    def _forward_feature(self, inputs: Sequence[Tensor]) -> Tensor:
        """Refine the backbone features.

        Args:
            inputs (Sequence[Tensor]): The backbone's outputs.

        Returns:
            Tensor: The last block's output ``(N, channels, H_max, W_max)``
            at the resolution of its largest input (1/4 of the image for a
            ResNet or MobileNetV2), before the classifier's dropout.
        """
        feats = self._transform_inputs(inputs)
        if self.input_dropout is not None:
            feats = [
                self.input_dropout(x) if i in self.input_dropout_index else x
                for i, x in enumerate(feats)
            ]
        feats = [conv(x) for conv, x in zip(self.adapt_convs, feats)]
        out = None
        for block, paths in zip(self.blocks, self.cascade):
            block_inputs = [feats[i] for i in paths]
            if out is not None:
                block_inputs.append(out)
            out = block(block_inputs)
        return out

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Compute logits ``(N, num_classes, H/4, W/4)`` from the features."""
        return self.cls_seg(self._forward_feature(inputs))
