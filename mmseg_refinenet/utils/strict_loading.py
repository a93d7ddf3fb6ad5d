"""Loading weights into a model, refusing any mismatch.

:func:`load_checkpoint_strict` loads a checkpoint for inference or testing,
where every weight must come from the file: :func:`check_state_dict_fits`
refuses a checkpoint of another model (missing, unexpected or wrongly shaped
keys) with a :class:`CheckpointMismatchError` that names the file, instead
of MMEngine's ``strict=False`` warnings, which leave the unmatched layers at
their random initial values. The file itself is read through MMEngine's
:class:`~mmengine.runner.CheckpointLoader`, i.e. for local files through
:func:`mmseg_refinenet.utils.checkpoint.load_local_checkpoint`.
"""
import torch
from mmengine.runner.checkpoint import CheckpointLoader


class CheckpointMismatchError(ValueError):
    """A checkpoint file does not fit the model it is loaded into.

    Raised by :func:`check_state_dict_fits` and
    :func:`load_checkpoint_strict`; a :class:`ValueError`, so callers that
    catch bad arguments in general also catch it.
    """


def _strip_module_prefix(state_dict):
    """Drop the ``module.`` prefix that (Distributed)DataParallel adds."""
    return {(k[len('module.'):] if k.startswith('module.') else k): v
            for k, v in state_dict.items()}


def _example(keys, limit=3):
    shown = ', '.join(keys[:limit])
    return shown + (', ...' if len(keys) > limit else '')


def check_state_dict_fits(model, state_dict, checkpoint_path,
                          config_hint=None):
    """Check that ``state_dict`` has exactly the keys and shapes of ``model``.

    MMEngine's ``load_checkpoint(strict=False)`` (what ``load_from`` and
    MMSeg's tools use) only logs missing and unexpected keys and PyTorch
    refuses a wrong shape deep inside ``load_state_dict``: a checkpoint of
    another model (another depth, width or ``num_classes``) then either
    leaves layers at their random initial values without stopping, or
    fails with a long list that does not say which file is at fault. This
    check compares every key and shape first and names the file.

    A ``module.`` prefix ((Distributed)DataParallel) is stripped. Missing
    ``num_batches_tracked`` buffers are accepted: older PyTorch did not
    save them and they do not change the model's output.

    Args:
        model (torch.nn.Module): The model the weights are meant for.
        state_dict (Mapping[str, Tensor]): The weights.
        checkpoint_path (str): Path of the file ``state_dict`` came from,
            for the message.
        config_hint (str, optional): What the model was built from (a
            config path), for the message. Default: None.

    Returns:
        dict: ``state_dict`` without the ``module.`` prefix, ready for
        ``model.load_state_dict(..., strict=False)``.

    Raises:
        CheckpointMismatchError: keys are missing, unexpected or of another
            shape. The message gives the count and examples of each.
    """
    state_dict = _strip_module_prefix(state_dict)
    expected = model.state_dict()
    missing = [
        k for k in expected
        if k not in state_dict and not k.endswith('num_batches_tracked')
    ]
    unexpected = [k for k in state_dict if k not in expected]
    wrong_shape = [
        k for k in expected
        if k in state_dict and hasattr(state_dict[k], 'shape')
        and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    if not (missing or unexpected or wrong_shape):
        return state_dict
    problems = []
    if missing:
        are = 'is' if len(missing) == 1 else 'are'
        problems.append(f'{len(missing)} of the model\'s {len(expected)} '
                        f'keys {are} missing (e.g. {_example(missing)})')
    if unexpected:
        are = 'key is' if len(unexpected) == 1 else 'keys are'
        problems.append(f'{len(unexpected)} {are} not in the model '
                        f'(e.g. {_example(unexpected)})')
    if wrong_shape:
        k = wrong_shape[0]
        have = 'key has' if len(wrong_shape) == 1 else 'keys have'
        problems.append(
            f'{len(wrong_shape)} {have} another shape (e.g. {k}: '
            f'{tuple(state_dict[k].shape)} in the checkpoint, '
            f'{tuple(expected[k].shape)} in the model)')
    model_name = f'the model of {config_hint!r}' if config_hint else \
        f'this {type(model).__name__}'
    raise CheckpointMismatchError(
        f'checkpoint file {checkpoint_path!r} does not fit {model_name}: '
        f'{"; ".join(problems)}. The checkpoint must come from the same '
        'config (same backbone, head widths and num_classes); to fine-tune '
        'from another model use load_from, which keeps matching layers only.')


def load_checkpoint_strict(model, filename, map_location='cpu',
                           config_hint=None):
    """Load a checkpoint file into ``model``, refusing any mismatch.

    The file is read through MMEngine's
    :class:`~mmengine.runner.CheckpointLoader`, so local files go through
    :func:`load_local_checkpoint` (full MMEngine checkpoints load without
    running code from the file; a missing or corrupt file names the file,
    a file that needs other globals is refused) and other
    schemes (``http://``, ``open-mmlab://``...) work as in MMEngine. Both a
    full checkpoint (weights under ``'state_dict'``) and a bare state dict
    are accepted. The weights are checked with
    :func:`check_state_dict_fits` before anything is copied into the model.

    Args:
        model (torch.nn.Module): The model to load into.
        filename (str): Checkpoint path or URL.
        map_location (str | torch.device): As in :func:`torch.load`.
            Default: 'cpu'.
        config_hint (str, optional): The config the model was built from,
            for error messages.

    Returns:
        dict: The whole checkpoint (``meta`` etc. included; for a bare
        state dict, ``{'state_dict': ...}``).

    Raises:
        FileNotFoundError: the local file does not exist.
        UntrustedCheckpointError: the file needs globals beyond those of
            a checkpoint and is not trusted (a :class:`RuntimeError`).
        RuntimeError: the file is truncated, corrupt or not a checkpoint.
        CheckpointMismatchError: the file holds no state dict, or its
            weights do not fit ``model``.
    """
    checkpoint = CheckpointLoader.load_checkpoint(
        filename, map_location=map_location)
    if isinstance(checkpoint, dict) and isinstance(
            checkpoint.get('state_dict'), dict):
        state_dict = checkpoint['state_dict']
    elif isinstance(checkpoint, dict) and checkpoint and all(
            isinstance(v, torch.Tensor) for v in checkpoint.values()):
        state_dict = checkpoint
        checkpoint = dict(state_dict=state_dict)
    else:
        found = (f'a dict with keys {_example(sorted(map(str, checkpoint)))}'
                 if isinstance(checkpoint, dict) else
                 f'a {type(checkpoint).__name__}')
        raise CheckpointMismatchError(
            f'checkpoint file {filename!r} holds {found}, not model weights; '
            "expected an MMEngine checkpoint (weights under 'state_dict') "
            'or a state dict of tensors')
    state_dict = check_state_dict_fits(model, state_dict, filename,
                                       config_hint)
    model.load_state_dict(state_dict, strict=False)
    return checkpoint
