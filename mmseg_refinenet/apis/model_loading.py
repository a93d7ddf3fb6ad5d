"""Build a segmentor from a config file and load its weights strictly.

What ``tools/infer.py``, ``tools/test.py`` and
``tools/deployment/pytorch2onnx.py`` share: every way a config or a
checkpoint can be wrong ends in one :class:`SegmentorLoadError` whose
message names the file and says what was expected, raised before any
output is written.
"""
import os.path as osp
import warnings


class SegmentorLoadError(Exception):
    """A config or checkpoint that cannot make the requested model.

    The tools print the message as ``error: ...`` and exit with status 2.
    """


def _first_line(err):
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def load_config(path, cfg_options=None):
    """Read a model config file.

    Args:
        path (str): Config file.
        cfg_options (dict | None): Overrides merged into the config
            (``--cfg-options``).

    Returns:
        mmengine.Config: The config.

    Raises:
        SegmentorLoadError: the file does not exist, cannot be parsed, or
            defines no ``model``.
    """
    from mmengine.config import Config
    if not osp.isfile(path):
        raise SegmentorLoadError(
            f'config file {path!r} does not exist; expected a model config '
            'such as configs/refinenet/*.py')
    try:
        cfg = Config.fromfile(osp.abspath(path))
    except Exception as err:  # noqa: B902  (a config can raise anything)
        raise SegmentorLoadError(
            f'config file {path!r} could not be loaded '
            f'({type(err).__name__}: {_first_line(err)})') from err
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise SegmentorLoadError(f'config file {path!r} defines no `model`; '
                                 'expected a model config')
    return cfg


def build_segmentor(cfg, config_path='<config>'):
    """Build ``cfg.model`` on the CPU without downloading any weights.

    Pretrained initialisation (``pretrained``, ``init_cfg``) is skipped, as
    in :func:`mmseg.apis.init_model`: the weights come from the checkpoint.

    Raises:
        SegmentorLoadError: the model cannot be built from the config.
    """
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    cfg.model.pretrained = None
    cfg.model.train_cfg = None
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', UserWarning)  # loss deprecations
            model = MODELS.build(cfg.model)
    except Exception as err:  # noqa: B902
        raise SegmentorLoadError(
            f'the model of config file {config_path!r} could not be built '
            f'({type(err).__name__}: {_first_line(err)})') from err
    model.cfg = cfg
    return model.eval()


def load_weights(model, checkpoint, config_path='<config>', trust=False):
    """Load ``checkpoint`` into ``model``, refusing any key/shape mismatch.

    The file is unpickled with the checkpoint allowlist of
    :mod:`mmseg_refinenet.utils.checkpoint`, or in full with ``trust``.

    Args:
        trust (bool): Trust the file (``--trust-checkpoint``): unpickle it
            in full, which runs any code it holds. Default: False.

    Returns:
        dict: The checkpoint's ``meta`` (empty if it has none).

    Raises:
        SegmentorLoadError: the file is missing, unreadable, needs more
            than a checkpoint's types (and is not trusted), holds no
            weights, or its weights do not fit ``model``.
    """
    from mmseg_refinenet.utils.checkpoint import trusted_checkpoints
    from mmseg_refinenet.utils.strict_loading import (
        CheckpointMismatchError, load_checkpoint_strict)
    if '://' not in checkpoint and not osp.isfile(checkpoint):
        raise SegmentorLoadError(
            f'checkpoint file {checkpoint!r} does not exist; expected a .pth '
            f'file saved by training {config_path!r} (or converted for it)')
    try:
        with trusted_checkpoints(checkpoint if trust else None):
            ckpt = load_checkpoint_strict(
                model, checkpoint, map_location='cpu',
                config_hint=config_path)
    except (CheckpointMismatchError, RuntimeError, FileNotFoundError) as err:
        raise SegmentorLoadError(_first_line(err)) from err
    meta = ckpt.get('meta', {})
    return meta if isinstance(meta, dict) else {}


def load_segmentor(config, checkpoint=None, device='cpu', cfg_options=None,
                   trust_checkpoint=False):
    """Config file + checkpoint file -> segmentor ready for inference.

    Args:
        config (str): Config file.
        checkpoint (str | None): Checkpoint file or URL; None keeps the
            random initial weights (for speed measurements and export
            checks only).
        device (str): Where to put the model.
        cfg_options (dict | None): Config overrides.
        trust_checkpoint (bool): Unpickle the checkpoint in full, which
            runs any code it holds (``--trust-checkpoint``); also done where
            the config sets ``trust_checkpoint = True``. Default: False.

    Returns:
        tuple: ``(model, cfg, meta)``; ``model.dataset_meta`` holds the
        class names and palette from the checkpoint, else from the config.

    Raises:
        SegmentorLoadError: any problem with the config or checkpoint.
    """
    cfg = load_config(config, cfg_options)
    model = build_segmentor(cfg, config)
    meta = {}
    if checkpoint is not None:
        trust = trust_checkpoint or config_trust(cfg, config)
        meta = load_weights(model, checkpoint, config, trust=trust)
    model.dataset_meta = dataset_meta(meta, cfg,
                                      model.decode_head.num_classes)
    return model.to(device), cfg, meta


def config_trust(cfg, config_path='<config>'):
    """The config's ``trust_checkpoint`` (default False).

    Raises:
        SegmentorLoadError: it is not True or False.
    """
    from mmseg_refinenet.utils.checkpoint import config_trusts_checkpoint
    try:
        return config_trusts_checkpoint(cfg)
    except ValueError as err:
        raise SegmentorLoadError(f'config file {config_path!r}: {err}')


def dataset_meta(meta, cfg, num_classes):
    """Class names and RGB palette: checkpoint meta, else config metainfo.

    Missing names become ``class i``; missing colours are filled as MMSeg's
    visualizer does (random, seeded 42).

    Returns:
        dict: ``classes`` (list of ``num_classes`` str) and ``palette``
        (list of ``num_classes`` [R, G, B]).
    """
    import numpy as np
    info = meta.get('dataset_meta') or {}
    if not info.get('classes'):
        info = cfg.get('metainfo') or {}
    if not info.get('classes'):
        try:
            info = cfg.test_dataloader.dataset.metainfo or {}
        except (AttributeError, KeyError):
            info = {}
    classes = [str(c) for c in (info.get('classes') or [])][:num_classes]
    classes += [f'class {i}' for i in range(len(classes), num_classes)]
    palette = [list(c)[:3] for c in (info.get('palette') or [])]
    palette = palette[:num_classes]
    rng = np.random.RandomState(42)
    extra = rng.randint(0, 255, size=(num_classes, 3)).tolist()
    palette += extra[len(palette):]
    return dict(classes=classes, palette=[[int(v) for v in c]
                                          for c in palette])
