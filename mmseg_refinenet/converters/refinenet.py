"""Published RefineNet / Light-Weight RefineNet weights -> this plugin.

The released PyTorch RefineNets (DrSleep/refinenet-pytorch ``rf101``,
best-of-acrv/refinenet) and Light-Weight RefineNets
(DrSleep/light-weight-refinenet ``rf_lw50/101/152``) store a torchvision
ResNet (``conv1``, ``bn1``, ``layer1`` ... ``layer4``) plus a decoder whose
modules are named by string (``p_ims1d2_outl*``, ``adapt_stage*``,
``mflow_conv_g*``, ``clf_conv``). This module knows that layout and maps it
onto an ``EncoderDecoder`` with MMSeg's ``ResNet(style='pytorch')`` and this
plugin's ``RefineNetHead`` (``configs/_base_/models/refinenet_r50.py`` or
``lw_refinenet_r50.py``).

The released Light-Weight RefineNet-MobileNetV2 (the same repository's
``mbv2``) stores its MobileNetV2 as ``layer1`` (stem) ... ``layer8``
(inverted residuals ``layer{i}.{j}.output.{k}``) and its decoder as
``conv3`` ... ``conv8``, ``crp1`` ... ``crp4``, ``conv_adapt2`` ...
``conv_adapt4`` and ``segm``; it maps onto :class:`ExpandedMobileNetV2`
(MMSeg's MobileNetV2 keys) and the ``RefineNetHead`` of
``configs/_base_/models/lw_refinenet_mobilenet_v2.py``. The published key
names live only here.

The conversion is strict: every key of the checkpoint must belong to the
published layout of the detected model, every key of that layout must be
present, and every shape must match; otherwise a ``ValueError`` says which
keys and shapes are wrong.
"""
import re
from collections import OrderedDict

import torch

RESNET_LAYERS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
#: the released MobileNetV2: (expand ratio, width, blocks) of layer2..8
MOBILENET_V2_LAYERS = ((1, 16, 1), (6, 24, 2), (6, 32, 3), (6, 64, 4),
                       (6, 96, 3), (6, 160, 3), (6, 320, 1))
#: its decoder: adapted levels (``conv{n}``, input width), deepest first
MOBILENET_V2_LEVELS = ((8, 320), (7, 160), (6, 96), (5, 64), (4, 32),
                       (3, 24))
#: backbone paths of the head's blocks 0..3 (``crp4`` ... ``crp1``); the
#: previous block's fusion conv (``conv_adapt{5 - b}``) comes after them
MOBILENET_V2_BLOCK_PATHS = (2, 2, 1, 1)
MOBILENET_V2 = 'MobileNetV2'

#: containers the published and training checkpoints put the weights in
CONTAINER_KEYS = ('state_dict', 'model', 'weights', 'segmenter')


def official_refinenet_shapes(depth=101, num_classes=21, lightweight=False):
    """Parameter names and shapes of the released PyTorch RefineNet.

    Written from the published layer layout (torchvision ResNet keys plus
    ``p_ims1d2_outl*``, ``adapt_stage*``, ``mflow_conv_g*``, ``clf_conv``) of
    DrSleep/refinenet-pytorch (``rf101``) and, with ``lightweight=True``,
    DrSleep/light-weight-refinenet (``rf_lw*``). Parameters only; the
    batch-norm buffers are :func:`official_refinenet_buffers`.

    Args:
        depth (int): ResNet depth, 50, 101 or 152. Default: 101.
        num_classes (int): Output channels of ``clf_conv``. Default: 21.
        lightweight (bool): Light-Weight RefineNet layout. Default: False.

    Returns:
        dict[str, tuple]: ``{published key: shape}`` in published order.
    """
    if depth not in RESNET_LAYERS:
        raise ValueError(f'depth must be one of {sorted(RESNET_LAYERS)}, '
                         f'got {depth!r}')
    shapes = {}

    def conv(name, c_out, c_in, k, bias=False):
        shapes[name + '.weight'] = (c_out, c_in, k, k)
        if bias:
            shapes[name + '.bias'] = (c_out, )

    def bn(name, c):
        shapes[name + '.weight'] = (c, )
        shapes[name + '.bias'] = (c, )

    conv('conv1', 64, 3, 7)
    bn('bn1', 64)
    inplanes = 64
    for li, (planes, blocks) in enumerate(
            zip((64, 128, 256, 512), RESNET_LAYERS[depth]), 1):
        for b in range(blocks):
            p = f'layer{li}.{b}.'
            conv(p + 'conv1', planes, inplanes, 1)
            bn(p + 'bn1', planes)
            conv(p + 'conv2', planes, planes, 3)
            bn(p + 'bn2', planes)
            conv(p + 'conv3', planes * 4, planes, 1)
            bn(p + 'bn3', planes * 4)
            if b == 0:
                conv(p + 'downsample.0', planes * 4, inplanes, 1)
                bn(p + 'downsample.1', planes * 4)
            inplanes = planes * 4

    k = 1 if lightweight else 3

    def rcu(prefix, c, n):
        for i in range(1, n + 1):
            conv(f'{prefix}.0.{i}_conv', c, c, 3, bias=True)
            conv(f'{prefix}.0.{i}_conv_relu_varout_dimred', c, c, 3)

    def crp(prefix, c):
        for i in range(1, 5):
            conv(f'{prefix}.0.{i}_outvar_dimred', c, c, k)

    for g, (c_in, c_out) in enumerate(
            [(2048, 512), (1024, 256), (512, 256), (256, 256)], 1):
        conv(f'p_ims1d2_outl{g}_dimred', c_out, c_in, k)
        if not lightweight:
            rcu(f'adapt_stage{g}_b', c_out, 2)
        if g > 1:
            conv(f'adapt_stage{g}_b2_joint_varout_dimred', 256, 256, k)
        crp(f'mflow_conv_g{g}_pool', c_out)
        if not lightweight:
            rcu(f'mflow_conv_g{g}_b', c_out, 3)
        if g < 4:
            conv(f'mflow_conv_g{g}_b3_joint_varout_dimred', 256, c_out, k)
    conv('clf_conv', num_classes, 256, 3, bias=True)
    return shapes


def official_lw_mobilenet_v2_shapes(num_classes=21):
    """Parameter names and shapes of the released LW-RefineNet-MobileNetV2.

    Written from the published layer layout of DrSleep/light-weight-refinenet
    (``mbv2``): a 3x3 stride-2 stem (``layer1``: conv, BN) and seven layers
    of inverted residuals (``layer2`` ... ``layer8``, widths 16, 24, 32, 64,
    96, 160, 320), each block ``output.0`` (1x1 expansion, also for expand
    ratio 1), ``output.1`` (3x3 depthwise) and ``output.2`` (1x1
    projection), each a conv without bias and a BN; then the decoder: 1x1
    convs ``conv8`` ... ``conv3`` to 256, four CRPs of four 1x1 convs
    (``crp4`` ... ``crp1``), three 1x1 ``conv_adapt4`` ... ``conv_adapt2``
    and the 3x3 classifier ``segm`` with bias. Parameters only; the
    batch-norm buffers are :func:`official_buffers`.

    Args:
        num_classes (int): Output channels of ``segm``. Default: 21.

    Returns:
        dict[str, tuple]: ``{published key: shape}`` in published order.
    """
    shapes = {}

    def conv_bn(name, c_out, c_in, k):
        shapes[name + '.0.weight'] = (c_out, c_in, k, k)
        shapes[name + '.1.weight'] = (c_out, )
        shapes[name + '.1.bias'] = (c_out, )

    conv_bn('layer1', 32, 3, 3)
    c_in = 32
    for li, (t, c, n) in enumerate(MOBILENET_V2_LAYERS, 2):
        for b in range(n):
            p = f'layer{li}.{b}.output.'
            hidden = c_in * t
            conv_bn(p + '0', hidden, c_in, 1)
            conv_bn(p + '1', hidden, 1, 3)  # depthwise
            conv_bn(p + '2', c, hidden, 1)
            c_in = c
    for level, c in MOBILENET_V2_LEVELS:
        shapes[f'conv{level}.weight'] = (256, c, 1, 1)
    for g in (4, 3, 2, 1):
        for i in range(1, 5):
            shapes[f'crp{g}.0.{i}_outvar_dimred.weight'] = (256, 256, 1, 1)
    for g in (4, 3, 2):
        shapes[f'conv_adapt{g}.weight'] = (256, 256, 1, 1)
    shapes['segm.weight'] = (num_classes, 256, 3, 3)
    shapes['segm.bias'] = (num_classes, )
    return shapes


def official_buffers(shapes):
    """Batch-norm buffers of a published layout (``{key: shape}``).

    Every BN of the released models has a 1-D ``weight`` (no other layer
    does).

    Returns:
        tuple[dict, dict]: ``({key: shape}`` of the required
        ``running_mean`` / ``running_var``, ``{key: shape}`` of the optional
        ``num_batches_tracked`` (absent from checkpoints saved before torch
        0.4.1)).
    """
    required, optional = {}, {}
    for key, shape in shapes.items():
        if key.endswith('.weight') and len(shape) == 1:  # a BN layer
            name = key[:-len('.weight')]
            required[name + '.running_mean'] = shape
            required[name + '.running_var'] = shape
            optional[name + '.num_batches_tracked'] = ()
    return required, optional


def official_refinenet_buffers(depth=101, num_classes=21, lightweight=False):
    """Batch-norm buffers of the released RefineNet (the ResNet's BNs).

    Returns:
        tuple[dict, dict]: see :func:`official_buffers`.
    """
    return official_buffers(
        official_refinenet_shapes(depth, num_classes, lightweight))


def official_to_mmseg_key(official_key):
    """Map a released RefineNet key to this plugin's EncoderDecoder key.

    Args:
        official_key (str): A key of the published layout, e.g.
            ``'mflow_conv_g2_pool.0.3_outvar_dimred.weight'``.

    Returns:
        str: The key in this plugin, e.g.
        ``'decode_head.blocks.1.crp.convs.2.conv.weight'``.

    Raises:
        KeyError: ``official_key`` is not a RefineNet key.
    """
    if not re.match(r'(p_ims|adapt_stage|mflow|clf)', official_key):
        if re.match(r'(conv1|bn1|layer[1-4])\.', official_key):
            return 'backbone.' + official_key
        raise KeyError(official_key)
    h = 'decode_head.'
    m = re.fullmatch(r'clf_conv\.(weight|bias)', official_key)
    if m:
        return h + f'conv_seg.{m[1]}'
    m = re.fullmatch(r'p_ims1d2_outl([1-4])_dimred\.(\w+)', official_key)
    if m:
        return h + f'adapt_convs.{4 - int(m[1])}.conv.{m[2]}'
    m = re.fullmatch(r'adapt_stage([1-4])_b2_joint_varout_dimred\.(\w+)',
                     official_key)
    if m:  # fusion conv of the backbone path of block g
        return h + f'blocks.{int(m[1]) - 1}.fusion.convs.0.conv.{m[2]}'
    m = re.fullmatch(r'mflow_conv_g([1-4])_b3_joint_varout_dimred\.(\w+)',
                     official_key)
    if m:  # fusion conv of the previous-block path of block g + 1
        return h + f'blocks.{int(m[1])}.fusion.convs.1.conv.{m[2]}'
    m = re.fullmatch(r'mflow_conv_g([1-4])_pool\.0\.(\d)_outvar_dimred'
                     r'\.(\w+)', official_key)
    if m:
        return h + (f'blocks.{int(m[1]) - 1}.crp.convs.{int(m[2]) - 1}'
                    f'.conv.{m[3]}')
    m = re.fullmatch(r'(adapt_stage|mflow_conv_g)([1-4])_b\.0\.(\d)_conv'
                     r'(_relu_varout_dimred)?\.(\w+)', official_key)
    if m:
        where = 'input_rcus.0' if m[1] == 'adapt_stage' else 'output_rcus'
        conv = 'conv2' if m[4] else 'conv1'
        return h + (f'blocks.{int(m[2]) - 1}.{where}.{int(m[3]) - 1}.'
                    f'{conv}.conv.{m[5]}')
    raise KeyError(official_key)


def official_lw_mobilenet_v2_to_mmseg_key(official_key):
    """Map a released LW-RefineNet-MobileNetV2 key to this plugin's key.

    Args:
        official_key (str): A key of the published layout, e.g.
            ``'layer3.1.output.1.1.running_var'`` or ``'conv_adapt4.weight'``.

    Returns:
        str: The key of an ``EncoderDecoder`` with ``ExpandedMobileNetV2``
        and the head of ``lw_refinenet_mobilenet_v2.py``, e.g.
        ``'backbone.layer2.1.conv.1.bn.running_var'`` or
        ``'decode_head.blocks.1.fusion.convs.2.conv.weight'``.

    Raises:
        KeyError: ``official_key`` is not a key of that layout.
    """
    h = 'decode_head.'
    part = {'0': 'conv', '1': 'bn'}
    m = re.fullmatch(r'layer1\.([01])\.(\w+)', official_key)
    if m:
        return f'backbone.conv1.{part[m[1]]}.{m[2]}'
    m = re.fullmatch(r'layer([2-8])\.(\d+)\.output\.([012])\.([01])\.(\w+)',
                     official_key)
    if m:
        return (f'backbone.layer{int(m[1]) - 1}.{m[2]}.conv.{m[3]}.'
                f'{part[m[4]]}.{m[5]}')
    m = re.fullmatch(r'conv([3-8])\.weight', official_key)
    if m:  # adapted levels in in_index order: conv3 (24 channels) first
        return h + f'adapt_convs.{int(m[1]) - 3}.conv.weight'
    m = re.fullmatch(r'crp([1-4])\.0\.([1-4])_outvar_dimred\.weight',
                     official_key)
    if m:
        return h + (f'blocks.{4 - int(m[1])}.crp.convs.{int(m[2]) - 1}'
                    '.conv.weight')
    m = re.fullmatch(r'conv_adapt([2-4])\.weight', official_key)
    if m:  # fusion conv of the previous-block path of the next block
        block = 5 - int(m[1])
        path = MOBILENET_V2_BLOCK_PATHS[block]
        return h + f'blocks.{block}.fusion.convs.{path}.conv.weight'
    m = re.fullmatch(r'segm\.(weight|bias)', official_key)
    if m:
        return h + f'conv_seg.{m[1]}'
    raise KeyError(official_key)


def _is_state_dict(obj):
    return isinstance(obj, dict) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor)
        for k, v in obj.items())


def unwrap_checkpoint(obj):
    """Find the state dict in a loaded checkpoint and strip ``module.``.

    Accepts a flat state dict or one nested (at any depth) under
    ``state_dict``, ``model``, ``weights`` or ``segmenter``, the containers
    of the published files and of their training scripts (which also store
    epochs and scores next to it). ``module.`` prefixes left by
    ``DataParallel`` are removed.

    Args:
        obj: What ``torch.load`` returned.

    Returns:
        OrderedDict[str, Tensor]: The state dict.

    Raises:
        ValueError: no state dict found.
    """
    seen = []
    while not _is_state_dict(obj):
        if not isinstance(obj, dict):
            where = ' under ' + '/'.join(seen) if seen else ''
            raise ValueError(
                f'not a checkpoint: expected a dict of tensors{where}, got '
                f'{type(obj).__name__}')
        inner = [k for k in CONTAINER_KEYS if isinstance(obj.get(k), dict)]
        if not inner:
            keys = [str(k) for k in list(obj)[:8]]
            raise ValueError(
                'not a checkpoint: found neither a state dict (a dict of '
                f'tensors) nor one of the containers {list(CONTAINER_KEYS)}'
                f'; top-level keys: {keys}')
        seen.append(inner[0])
        obj = obj[inner[0]]
    state_dict = OrderedDict()
    for key, value in obj.items():
        while key.startswith('module.'):
            key = key[len('module.'):]
        if key in state_dict:
            raise ValueError(f'key {key!r} appears twice once the '
                             '"module." prefixes are removed')
        state_dict[key] = value
    return state_dict


def _short(keys, n=10):
    keys = sorted(keys)
    more = f' ... and {len(keys) - n} more' if len(keys) > n else ''
    return f'{keys[:n]}{more}'


def detect_refinenet(state_dict):
    """Tell which published model a state dict is.

    Returns:
        dict: ``backbone`` (``'ResNet-50'``, ``'ResNet-101'``,
        ``'ResNet-152'`` or ``'MobileNetV2'``), ``depth`` (None for
        MobileNetV2), ``num_classes`` and ``lightweight`` (the variant; the
        MobileNetV2 release is Light-Weight RefineNet).

    Raises:
        ValueError: the state dict is not a published RefineNet.
    """
    if 'segm.weight' in state_dict or 'conv8.weight' in state_dict:
        probe = ('segm.weight', 'conv8.weight', 'layer8.0.output.0.0.weight')
        missing = [k for k in probe if k not in state_dict]
        if missing:
            raise ValueError(
                'not a Light-Weight RefineNet-MobileNetV2 checkpoint: it has '
                f'no {missing} (the release has layer1 ... layer8, conv3 ... '
                'conv8, crp1 ... crp4, conv_adapt2 ... conv_adapt4, segm)')
        return dict(backbone=MOBILENET_V2, depth=None,
                    num_classes=int(state_dict['segm.weight'].shape[0]),
                    lightweight=True)
    probe = ('clf_conv.weight', 'p_ims1d2_outl1_dimred.weight',
             'layer3.0.conv1.weight')
    missing = [k for k in probe if k not in state_dict]
    if missing:
        raise ValueError(
            'not a RefineNet checkpoint: it has no '
            f'{missing} (RefineNet checkpoints have torchvision ResNet keys '
            'plus p_ims1d2_outl*, adapt_stage*, mflow_conv_g*, clf_conv); '
            f'its keys start with {list(state_dict)[:5]}')
    blocks = {
        int(m[1])
        for m in (re.match(r'layer3\.(\d+)\.', k) for k in state_dict) if m
    }
    by_blocks = {v[2]: d for d, v in RESNET_LAYERS.items()}
    if len(blocks) not in by_blocks or blocks != set(range(len(blocks))):
        raise ValueError(
            f'layer3 has {len(blocks)} blocks; a ResNet-50/101/152 has '
            f'{sorted(by_blocks)}')
    depth = by_blocks[len(blocks)]
    num_classes = int(state_dict['clf_conv.weight'].shape[0])
    kernel = tuple(state_dict['p_ims1d2_outl1_dimred.weight'].shape[2:])
    lightweight = kernel == (1, 1)
    return dict(backbone=f'ResNet-{depth}', depth=depth,
                num_classes=num_classes, lightweight=lightweight)


def convert_refinenet_state_dict(state_dict, lightweight=None):
    """Convert a published (Light-Weight) RefineNet state dict.

    Args:
        state_dict (dict[str, Tensor]): The published weights, already
            unwrapped (see :func:`unwrap_checkpoint`).
        lightweight (bool | None): The variant; None detects it from the
            kernel size of ``p_ims1d2_outl1_dimred`` (1x1: Light-Weight).
            The MobileNetV2 release is Light-Weight only.

    Returns:
        tuple[OrderedDict, dict]: The state dict for this plugin's
        ``EncoderDecoder`` and ``info`` with ``backbone``, ``depth``,
        ``num_classes``, ``lightweight`` and ``num_params``.

    Raises:
        ValueError: a key left over, a key missing or a shape mismatch,
            each listed.
    """
    info = detect_refinenet(state_dict)
    num_classes = info['num_classes']
    if info['backbone'] == MOBILENET_V2:
        if lightweight is False:
            raise ValueError(
                'the checkpoint is the released Light-Weight RefineNet-'
                'MobileNetV2; there is no RefineNet (lightweight=False) on '
                'MobileNetV2. Leave the variant to detection')
        lightweight = True
        name = 'Light-Weight RefineNet-MobileNetV2'
        params = official_lw_mobilenet_v2_shapes(num_classes)
        to_mmseg = official_lw_mobilenet_v2_to_mmseg_key
    else:
        if lightweight is None:
            lightweight = info['lightweight']
        name = ('Light-Weight RefineNet' if lightweight else 'RefineNet') \
            + f'-{info["depth"]}'
        params = official_refinenet_shapes(info['depth'], num_classes,
                                           lightweight)
        to_mmseg = official_to_mmseg_key
    required, optional = official_buffers(params)
    expected = dict(params, **required)
    extra = set(state_dict) - set(expected) - set(optional)
    if extra:
        raise ValueError(
            f'checkpoint has keys the {name} layout does not: '
            f'{_short(extra)}')
    missing = set(expected) - set(state_dict)
    if missing:
        raise ValueError(f'checkpoint lacks keys of the {name} layout: '
                         f'missing: {_short(missing)}')
    wrong = [(k, tuple(state_dict[k].shape), s)
             for k, s in dict(expected, **optional).items()
             if k in state_dict and tuple(state_dict[k].shape) != s]
    if wrong:
        lines = '; '.join(f'shape of {k} is {got} but {name} expects {exp}'
                          for k, got, exp in wrong[:5])
        more = f' (and {len(wrong) - 5} more)' if len(wrong) > 5 else ''
        raise ValueError(lines + more)
    converted = OrderedDict()
    for key in list(params) + list(required) + list(optional):
        value = state_dict.get(key)
        if value is None:  # num_batches_tracked of old checkpoints
            value = torch.tensor(0, dtype=torch.long)
        converted[to_mmseg(key)] = value.detach().clone()
    info.update(
        lightweight=bool(lightweight),
        num_params=sum(torch.Size(s).numel() for s in params.values()))
    return converted, info


def save_mmengine_checkpoint(state_dict, meta, dst):
    """Write ``{'meta': meta, 'state_dict': state_dict}`` to ``dst``.

    The file is written next to ``dst`` under a temporary name and renamed
    at the end, so a failure leaves no partial ``dst``.
    """
    import os
    import tempfile
    dst_dir = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(dst_dir):
        raise ValueError(f'output folder {dst_dir} does not exist')
    fd, tmp = tempfile.mkstemp(dir=dst_dir, prefix='.tmp_', suffix='.pth')
    os.close(fd)
    try:
        torch.save(dict(meta=meta, state_dict=state_dict), tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
