"""Run-time checks of what reaches the models: features, images, labels.

The constructor arguments are checked when a model is built, by the
functions of :mod:`.arg_checks`. What can only be checked once data
arrives is here, shared by the heads, the FRRN backbones and the
bootstrapped loss, so that each check and its message exist once:

* :func:`check_head_inputs`: the backbone returned the levels ``in_index``
  selects, with the widths ``in_channels`` promises, and they are finite;
* :func:`check_image_batch`: an image batch has the channels a backbone was
  built for, a size it can pool, and finite values;
* :func:`check_seg_labels` / :func:`check_gt_sem_seg`: every label is a
  class index or the ignore index.

Without them the same mistakes end deep inside PyTorch (a convolution's
shape error that names no config field, an ``IndexError`` in
``cross_entropy`` on the CPU, a device-side assert on CUDA) or, worse, in a
silent wrong result: NaN features give NaN logits whose arg-max is class 0
everywhere, and MMEngine trains on with a NaN loss.

Cost: the shape checks compare sizes on the host and are always on. The
value checks (finiteness, label range) read the tensor once and need one
host-device synchronisation each; on a GPU that stalls the launch of the
following kernels until the check's result is back, at every step. They
are therefore opt-in, as MMSeg's own models make none: ``check_finite=True``
on the heads and the FRRN backbones checks inputs and features for NaN and
Inf, ``check_labels=True`` on the heads and on
:class:`~mmseg_refinenet.models.losses.BootstrappedCrossEntropyLoss` checks
the label range. Every value check is skipped while the model is traced,
scripted, compiled or exported (``torch.jit.trace``, ONNX export,
``torch.compile``, ``torch.export``): a data-dependent ``if`` either breaks
the graph or is frozen into it, and an exported graph has no use for a
Python exception. Under ``torch.jit.trace`` the shape checks are skipped
too, since traced sizes are tensors and comparing them only adds warnings.
On fake tensors (``FakeTensorMode``, as used to estimate memory) the value
checks are skipped as well: there are no values to check.
"""
from typing import Optional, Sequence

import torch
from torch import Tensor

# labels shown in a message at most
_MAX_SHOWN = 8


def is_compiling() -> bool:
    """Whether ``torch.compile`` or ``torch.export`` (Dynamo) is tracing
    the caller.

    ``torch.compiler.is_compiling`` (torch >= 2.3), else
    ``torch._dynamo.is_compiling``.
    """
    check = getattr(torch.compiler, 'is_compiling', None)
    if check is None:
        check = torch._dynamo.is_compiling
    return check()


def value_checks_enabled() -> bool:
    """False while tracing, scripting, compiling or exporting the model,
    and on fake tensors."""
    if torch.jit.is_scripting() or torch.jit.is_tracing():
        return False
    if torch.onnx.is_in_onnx_export() or is_compiling():
        return False
    is_exporting = getattr(torch.compiler, 'is_exporting', None)
    if is_exporting is not None and is_exporting():
        return False
    # FakeTensorMode (shape propagation, memory estimates): no values
    detect = getattr(getattr(torch, '_guards', None), 'detect_fake_mode',
                     None)
    if detect is not None and detect() is not None:
        return False
    return True


def _all_finite(tensors: Sequence[Tensor]) -> bool:
    """Whether every tensor is finite, with a single synchronisation."""
    flags = [torch.isfinite(t).all() for t in tensors]
    return bool(torch.stack(flags).all()) if flags else True


def check_head_inputs(head, inputs, check_finite: bool = False) -> None:
    """Check backbone outputs against a decode head's configuration.

    Works for heads with one input (``in_index`` an int, ``in_channels`` an
    int) and several (both lists), before the head computes anything.

    Args:
        head (BaseDecodeHead): The head; its ``in_index`` and
            ``in_channels`` are checked.
        inputs (list[Tensor]): The backbone's feature maps.
        check_finite (bool): Also check that the selected maps hold no NaN
            or Inf (one synchronisation). Default: False.

    Raises:
        TypeError: ``inputs`` is not a list of feature maps.
        ValueError: an ``in_index`` beyond the backbone's outputs, widths
            other than ``in_channels``, or NaN / Inf in the features.
    """
    owner = type(head).__name__
    if not isinstance(inputs, (list, tuple)):
        raise TypeError(
            f'{owner} takes the list of backbone feature maps, but got a '
            f'{type(inputs).__name__}; pass backbone(img), which is a list '
            'even for a single level')
    multiple = isinstance(head.in_index, (list, tuple))
    in_index = list(head.in_index) if multiple else [head.in_index]
    num_levels = len(inputs)
    for pos, idx in enumerate(in_index):
        if not -num_levels <= idx < num_levels:
            field = f'in_index[{pos}]' if multiple else 'in_index'
            raise ValueError(
                f'{owner}: decode_head.{field}={idx}, but the backbone '
                f'returned {num_levels} feature '
                f'map{"s" if num_levels != 1 else ""}; use indices in '
                f'0..{num_levels - 1} (check backbone.out_indices)')
    selected = [inputs[i] for i in in_index]
    if torch.jit.is_tracing():
        # traced sizes are tensors: comparing them only adds TracerWarnings
        return
    actual = [x.shape[1] for x in selected]
    if multiple:
        # 'resize_concat' heads keep the sum of the widths in in_channels
        expected = list(head.in_channels) if isinstance(
            head.in_channels, (list, tuple)) else [head.in_channels]
        if sum(actual) != sum(expected) or (len(expected) == len(actual)
                                            and actual != expected):
            raise ValueError(
                f'{owner}: decode_head.in_channels={head.in_channels} but '
                f'the backbone levels in_index={in_index} have {actual} '
                f'channels; set decode_head.in_channels={actual}')
    elif actual[0] != head.in_channels:
        raise ValueError(
            f'{owner}: decode_head.in_channels={head.in_channels} but the '
            f'backbone level in_index={in_index[0]} has {actual[0]} '
            f'channels; set decode_head.in_channels={actual[0]}')
    if check_finite and value_checks_enabled() and not _all_finite(
            selected):
        bad = [i for i, x in zip(in_index, selected)
               if not bool(torch.isfinite(x).all())]
        raise ValueError(
            f'{owner}: the backbone feature maps at in_index {bad} contain '
            'NaN or Inf. The input images must be finite: check the images '
            "and the data preprocessor's mean and std (a std of 0 gives "
            'Inf). If they are, the backbone produced them: diverged '
            'weights, or an overflow under fp16 autocast, which '
            'GradScaler skips as a step with an inf loss when the head is '
            'built with check_finite=False, the default')


def check_image_batch(owner: str,
                      x: Tensor,
                      in_channels: int,
                      size_divisor: int = 1,
                      check_finite: bool = False) -> None:
    """Check an image batch at the entry of a backbone.

    Args:
        owner (str): The backbone, for the message.
        x (Tensor): The batch, (N, C, H, W).
        in_channels (int): The C the backbone was built for.
        size_divisor (int): H and W must be multiples of it (the total
            pooling factor). Default: 1.
        check_finite (bool): Also check for NaN / Inf (one
            synchronisation). Default: False.

    Raises:
        ValueError: not (N, in_channels, H, W), H or W not divisible, or
            NaN / Inf in the images.
    """
    if torch.jit.is_tracing():
        # traced sizes are tensors: comparing them only adds TracerWarnings
        return
    if x.dim() != 4:
        raise ValueError(
            f'{owner}: expected a batch of images (N, {in_channels}, H, W), '
            f'got a tensor of shape {tuple(x.shape)}')
    if x.shape[1] != in_channels:
        raise ValueError(
            f'{owner}: the images have {x.shape[1]} '
            f'channel{"s" if x.shape[1] != 1 else ""}, but the backbone was '
            f'built with in_channels={in_channels}. Convert the images (e.g. '
            "LoadImageFromFile(color_type='color') gives 3-channel BGR) or "
            f'set backbone.in_channels={x.shape[1]}')
    h, w = x.shape[-2:]
    d = size_divisor
    if h % d or w % d:
        problem = (f'is smaller than {d}, the total stride of the network; '
                   f'H and W must be divisible by {d}' if h < d or w < d
                   else f'is not divisible by {d}, the total pooling '
                   'factor of the network')
        raise ValueError(
            f'{owner}: input size {h}x{w} (HxW) {problem}. Pad the input '
            'with the data preprocessor, for training and for testing: '
            "data_preprocessor=dict(type='SegDataPreProcessor', "
            f'size_divisor={d}, test_cfg=dict(size_divisor={d}), ...) in '
            'the model config (MMSeg pads training batches by size_divisor '
            'and test images by test_cfg.size_divisor only); with sliding-'
            "window inference (model test_cfg=dict(mode='slide', ...)) the "
            'network sees the windows, not the padded image, so also make '
            f'both sides of test_cfg.crop_size multiples of {d}')
    if check_finite and value_checks_enabled() and not _all_finite([x]):
        raise ValueError(
            f'{owner}: the input images contain NaN or Inf; images must be '
            "finite. Check the image files and the data preprocessor's mean "
            'and std (a std of 0 gives Inf)')


def _describe_labels(label: Tensor, invalid: Tensor):
    values = torch.unique(label[invalid]).tolist()
    shown = ', '.join(str(v) for v in values[:_MAX_SHOWN])
    return f'[{shown}{", ..." if len(values) > _MAX_SHOWN else ""}]'


def _invalid_labels(label: Tensor, num_classes: int,
                    ignore_index: Optional[int]) -> Tensor:
    invalid = (label < 0) | (label >= num_classes)
    if ignore_index is not None:
        invalid &= label != ignore_index
    return invalid


def _label_message(owner, values, num_classes, ignore_index, where=''):
    ignore = f' or ignore_index={ignore_index}' if ignore_index is not None \
        else ''
    return (f'{owner}: labels {values}{where} are outside the classes: '
            f'with num_classes={num_classes} every label must be in '
            f'[0, {num_classes - 1}]{ignore}. Check num_classes, the '
            "dataset's reduce_zero_label / label_map, and the label maps "
            'written by the converter')


def check_seg_labels(label: Tensor,
                     num_classes: int,
                     ignore_index: Optional[int],
                     owner: str) -> None:
    """Raise a ValueError if ``label`` holds a value that is no class.

    Valid values are ``0 .. num_classes - 1`` and ``ignore_index``. One
    pass over ``label`` and one synchronisation; the values are listed
    only when the check fails.

    Args:
        label (Tensor): Class indices, any shape.
        num_classes (int): Number of classes.
        ignore_index (int | None): The void label.
        owner (str): Who checks, for the message.
    """
    if not value_checks_enabled():
        return
    invalid = _invalid_labels(label, num_classes, ignore_index)
    if bool(invalid.any()):
        raise ValueError(
            _label_message(owner, _describe_labels(label, invalid),
                           num_classes, ignore_index))


def check_gt_sem_seg(batch_data_samples, num_classes: int,
                     ignore_index: Optional[int], owner: str) -> None:
    """:func:`check_seg_labels` of the ``gt_sem_seg`` of every sample.

    One synchronisation for the whole batch; the message names the label
    file of the first bad sample when its metainfo has ``seg_map_path``.
    """
    if not value_checks_enabled() or not batch_data_samples:
        return
    labels = [s.gt_sem_seg.data for s in batch_data_samples]
    invalid = [_invalid_labels(x, num_classes, ignore_index) for x in labels]
    if not bool(torch.stack([m.any() for m in invalid]).any()):
        return
    for sample, label, mask in zip(batch_data_samples, labels, invalid):
        if bool(mask.any()):
            path = sample.metainfo.get('seg_map_path')
            where = f' in {path}' if path else ''
            raise ValueError(
                _label_message(owner, _describe_labels(label, mask),
                               num_classes, ignore_index, where))
