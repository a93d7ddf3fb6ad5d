"""Bootstrapped cross-entropy loss of FRRN (Eq. 10 of the paper)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmseg.registry import MODELS
from ..utils import check_seg_labels
from ..utils.arg_checks import check_one_of, check_positive_int

REDUCTIONS = ('mean', 'sum', 'none')


def bootstrapped_cross_entropy(cls_score,
                               label,
                               k,
                               weight=None,
                               ignore_index=255,
                               reduction='mean',
                               check_labels=False):
    """Mean cross-entropy of the ``k`` hardest pixels of every image.

    For image ``n`` let ``l_n`` be the pixel-wise cross-entropy over its
    non-void pixels (label != ``ignore_index``). The image's loss is the
    mean of the ``min(k, #non-void)`` largest values of ``l_n`` (Eq. 10 of
    Pohlen et al., CVPR 2017); an image without non-void pixels has loss 0.
    Computed in float32 whatever the dtype of ``cls_score``.

    Every label must be a class index (``0 .. C - 1``) or ``ignore_index``.
    With ``check_labels`` anything else raises a ValueError that lists the
    values, instead of an ``IndexError`` inside ``cross_entropy`` (CPU) or
    a device-side assert (CUDA) that names neither; the check costs one
    pass over ``label`` and one device synchronisation per call (skipped
    while tracing or compiling).

    Args:
        cls_score (Tensor): Logits, (N, C, H, W).
        label (Tensor): Class indices, (N, H, W).
        k (int): Number of pixels per image to average.
        weight (Tensor | None): Pixel weights, (N, H, W), multiplied into
            the pixel losses before the selection. Default: None.
        ignore_index (int): Label of void pixels. Default: 255.
        reduction (str): ``'mean'`` (over the batch), ``'sum'`` or
            ``'none'`` (one value per image). Default: 'mean'.
        check_labels (bool): Check the labels first. Default: False.

    Returns:
        Tensor: Scalar loss, or (N,) for ``reduction='none'``.

    Raises:
        ValueError: with ``check_labels``, ``label`` holds a value that is
            neither a class index nor ``ignore_index``.
    """
    if check_labels:
        check_seg_labels(label, cls_score.shape[1], ignore_index,
                         'BootstrappedCrossEntropyLoss')
    num_images = cls_score.shape[0]
    pixel_loss = F.cross_entropy(
        cls_score.float(), label.long(), reduction='none',
        ignore_index=ignore_index).reshape(num_images, -1)
    if weight is not None:
        pixel_loss = pixel_loss * weight.float().reshape(num_images, -1)
    valid = (label != ignore_index).reshape(num_images, -1)
    # void pixels get -inf so that they are never among the top k
    pixel_loss = pixel_loss.masked_fill(~valid, float('-inf'))
    top, _ = pixel_loss.topk(min(k, pixel_loss.shape[1]), dim=1)
    # the first min(k, #non-void) entries of each row are the non-void ones;
    # select by count, not by finiteness, so that a pixel loss that
    # overflowed to +inf makes the loss inf instead of being dropped
    num_selected = valid.sum(dim=1).clamp(max=top.shape[1])
    positions = torch.arange(top.shape[1], device=top.device)
    top_valid = positions[None, :] < num_selected[:, None]
    top = torch.where(top_valid, top, torch.zeros_like(top))
    per_image = top.sum(dim=1) / num_selected.clamp(min=1)
    if reduction == 'none':
        return per_image
    if reduction == 'sum':
        return per_image.sum()
    return per_image.mean()


@MODELS.register_module()
class BootstrappedCrossEntropyLoss(nn.Module):
    """Bootstrapped cross-entropy loss, Eq. 10 of `FRRN
    <https://arxiv.org/abs/1611.08323>`_.

    Per image, the mean cross-entropy of the ``k`` non-void pixels with the
    largest loss (all non-void pixels if there are fewer than ``k``; 0 for
    an image that is entirely void); the loss is the mean of these values
    over the batch. Use it as ``loss_decode`` of any MMSeg decode head::

        loss_decode=dict(type='BootstrappedCrossEntropyLoss', k=8192)

    Args:
        k (int): Number of pixels per image to average. The paper uses
            8192 for FRRN A (256x512 inputs) and 32768 for FRRN B
            (512x1024). Default: 8192.
        reduction (str): ``'mean'`` over the batch, ``'sum'`` or ``'none'``.
            Default: 'mean'.
        loss_weight (float): Factor of the loss. Default: 1.0.
        loss_name (str): Name of the loss item; must start with ``loss_``
            to be back-propagated. Default: 'loss_boot_ce'.
        check_labels (bool): Check at every call that each label is a
            class or ``ignore_index`` and raise a ValueError naming the bad
            values otherwise (one device synchronisation per call; a head's
            ``check_labels`` does the same for all its losses and also
            names the label file). Default: False.
    """

    def __init__(self,
                 k=8192,
                 reduction='mean',
                 loss_weight=1.0,
                 loss_name='loss_boot_ce',
                 check_labels=False):
        super().__init__()
        owner = type(self).__name__
        self.k = check_positive_int(owner, 'k (pixels per image)', k)
        self.reduction = check_one_of(owner, 'reduction', reduction,
                                      REDUCTIONS)
        self.loss_weight = loss_weight
        self._loss_name = loss_name
        self.check_labels = check_labels

    def extra_repr(self):
        return f'k={self.k}, reduction={self.reduction!r}'

    def forward(self,
                cls_score,
                label,
                weight=None,
                avg_factor=None,
                reduction_override=None,
                ignore_index=255,
                **kwargs):
        """Compute the loss.

        Args:
            cls_score (Tensor): Logits, (N, C, H, W).
            label (Tensor): Class indices, (N, H, W).
            weight (Tensor | None): Pixel weights, (N, H, W). Default: None.
            avg_factor (None): Unused; the loss averages over the selected
                pixels and the images. Present for MMSeg's loss interface.
            reduction_override (str | None): Overrides ``reduction``.
            ignore_index (int): Label of void pixels. Default: 255.

        Returns:
            Tensor: The weighted loss (float32).
        """
        assert reduction_override in (None, 'none', 'mean', 'sum')
        reduction = reduction_override or self.reduction
        loss = bootstrapped_cross_entropy(
            cls_score,
            label,
            self.k,
            weight=weight,
            ignore_index=ignore_index,
            reduction=reduction,
            check_labels=self.check_labels)
        return self.loss_weight * loss

    @property
    def loss_name(self):
        """str: Name of the loss item in the loss dict."""
        return self._loss_name
