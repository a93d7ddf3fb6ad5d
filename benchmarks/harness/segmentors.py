"""A config's segmentor, ready to measure.

Configs are files, or configs of an installed package through MMEngine's
scope prefix (``mmseg::path/inside/mmseg/configs.py``). They are read and
built by :func:`mmseg_refinenet.apis.load_config` and
:func:`mmseg_refinenet.apis.build_segmentor`, the package's one path from a
config to a model; here pretrained weights are removed first (nothing is
downloaded: the models keep their random initialisation, which changes
none of the figures), SyncBN becomes BN, and a failure is a
:class:`BenchmarkError`.
"""
import os.path as osp

import torch


class BenchmarkError(Exception):
    """A config or model that cannot be measured; the message says why."""


def resolve_config(path):
    """Returns the file of ``path``, resolving ``package::rel/path.py``."""
    if '::' in path:
        from mmengine.config.utils import _get_package_and_cfg_path
        from mmengine.utils import get_installed_path, is_installed
        try:
            package, rel = _get_package_and_cfg_path(path)
        except Exception as e:  # malformed scope
            raise BenchmarkError(f'bad config {path!r}: {e}')
        if not is_installed(package):
            raise BenchmarkError(
                f'config {path!r}: package {package!r} is not installed')
        cfg_file = osp.join(get_installed_path(package), '.mim', 'configs',
                            rel)
        if not osp.isfile(cfg_file):
            raise BenchmarkError(
                f'config {path!r} not found (looked for {cfg_file})')
        return cfg_file
    if not osp.isfile(path):
        raise BenchmarkError(f'config file not found: {path}')
    return path


def strip_pretrained(node):
    """Removes pretrained weights and Pretrained init_cfgs in place."""
    if isinstance(node, dict):
        if 'pretrained' in node:
            node['pretrained'] = None
        init = node.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            node['init_cfg'] = None
        elif isinstance(init, list):
            node['init_cfg'] = [
                c for c in init
                if not (isinstance(c, dict) and c.get('type') == 'Pretrained')
            ] or None
        for value in node.values():
            strip_pretrained(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            strip_pretrained(value)


def set_num_classes(model_cfg, num_classes):
    """Sets ``num_classes`` of the decode and auxiliary heads in place."""
    for key in ('decode_head', 'auxiliary_head'):
        heads = model_cfg.get(key)
        if heads is None:
            continue
        for head in heads if isinstance(heads, (list, tuple)) else [heads]:
            head['num_classes'] = num_classes


def load_config(path, num_classes=None):
    """Reads a config file or ``package::`` config with
    :func:`mmseg_refinenet.apis.load_config`; raises BenchmarkError."""
    from mmseg_refinenet.apis import SegmentorLoadError
    from mmseg_refinenet.apis import load_config as read_config
    try:
        cfg = read_config(resolve_config(path))
    except SegmentorLoadError as e:
        raise BenchmarkError(str(e)) from e
    if num_classes is not None:
        set_num_classes(cfg.model, num_classes)
    return cfg


def build_model(cfg, path, device, value_checks=False):
    """Builds ``cfg.model`` with :func:`mmseg_refinenet.apis.build_segmentor`
    without pretrained weights, SyncBN as BN, on ``device`` (None: where it
    was built, e.g. under ``FakeTensorMode``), in eval mode.

    ``value_checks`` switches the plugin's opt-in value checks on (NaN /
    Inf in inputs and features, ``check_finite``, and the label range,
    ``check_labels``, of the FRRN backbones, the heads and the losses);
    otherwise they stay off, as the models build them by default: each is
    a host-device synchronisation that MMSeg's models do not make.
    """
    from mmengine.model import revert_sync_batchnorm

    from mmseg_refinenet.apis import SegmentorLoadError, build_segmentor
    strip_pretrained(cfg.model)
    try:
        model = build_segmentor(cfg, path)
    except SegmentorLoadError as e:
        raise BenchmarkError(str(e)) from e
    model = revert_sync_batchnorm(model)
    for module in model.modules():
        for flag in ('check_finite', 'check_labels'):
            if isinstance(getattr(module, flag, None), bool):
                setattr(module, flag, value_checks)
    return model if device is None else model.to(torch.device(device))


def model_name(model):
    """E.g. ``EncoderDecoder(ResNet, RefineNetHead)``."""
    parts = [type(model).__name__]
    inner = [type(getattr(model, n)).__name__
             for n in ('backbone', 'decode_head')
             if getattr(model, n, None) is not None]
    if inner:
        parts.append('(' + ', '.join(inner) + ')')
    return ''.join(parts)


def num_classes(model):
    head = getattr(model, 'decode_head', None)
    if isinstance(head, (list, tuple)) or type(head).__name__ in (
            'ModuleList', ):
        head = head[-1]
    return int(getattr(head, 'num_classes', 2) or 2)


def count_params(model):
    """Parameters in millions."""
    return sum(p.numel() for p in model.parameters()) / 1e6


def snapshot_state(model):
    """A copy of ``model``'s state dict in host memory, to restore between
    measurements with ``model.load_state_dict``.

    On the host, not on the model's device: a second copy of the weights
    on the GPU would count in every peak that
    ``torch.cuda.max_memory_allocated`` reports (about 450 MB for
    RefineNet-R101).
    """
    return {key: value.detach().to('cpu', copy=True)
            for key, value in model.state_dict().items()}


def set_with_cp(model, enabled):
    """Switches gradient checkpointing of every module that has it.

    Sets ``with_cp`` of every sub-module that has the attribute (our RUs,
    FRRUs and RCUs, MMSeg's ResNet blocks). Returns how many were set.
    """
    n = 0
    for module in model.modules():
        if hasattr(module, 'with_cp'):
            module.with_cp = bool(enabled)
            n += 1
    return n
