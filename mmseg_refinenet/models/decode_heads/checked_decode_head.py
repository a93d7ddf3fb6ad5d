"""The checks that RefineNetHead and FRRNHead share."""
import torch
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from ..utils import check_gt_sem_seg, check_head_inputs
from ..utils.arg_checks import check_channels, check_positive_int


class CheckedDecodeHead(BaseDecodeHead):
    """:class:`BaseDecodeHead` that refuses bad input early and by name.

    Always on, since they cost nothing on the device:

    * at build time, ``in_channels``, ``channels`` and ``num_classes``
      must be positive integers (``BaseDecodeHead`` builds its classifier
      from them first; a 0 gave an empty classifier that predicts nothing,
      a negative value a tensor-creation error);
    * at every forward, before any computation
      (:func:`~mmseg_refinenet.models.utils.check_head_inputs`): ``in_index``
      within the backbone's outputs and their widths equal to
      ``in_channels`` (otherwise PyTorch's convolution error names no
      config field). These compare shapes only.

    Opt-in, because each reads a tensor and waits for the device once per
    training step (MMSeg's own heads make no such check):

    * ``check_finite``: no NaN or Inf in the selected features, which
      would otherwise give NaN logits, an all-zero arg-max prediction and a
      NaN loss that MMEngine trains on;
    * ``check_labels``: in ``loss_by_feat``
      (:func:`~mmseg_refinenet.models.utils.check_gt_sem_seg`), every label
      is in ``[0, num_classes)`` or ``ignore_index``. Without it MMSeg's
      ``CrossEntropyLoss`` fails with an ``IndexError`` inside
      ``cross_entropy`` on the CPU and a device-side assert on CUDA, which
      names neither the value nor the label file.

    Turn them on to find a bad dataset or a diverging run, e.g. with
    ``--cfg-options model.decode_head.check_finite=True
    model.decode_head.check_labels=True``. Both are skipped while the model
    is traced, exported or compiled (see
    :mod:`mmseg_refinenet.models.utils.checks`).

    The losses are computed on float32 logits when the logits are float16
    or bfloat16 (a model run in half precision): MMSeg's
    ``CrossEntropyLoss`` computes in the dtype of the logits and averages
    as a sum over the pixels, which overflows float16 (max 65504) to inf
    for large logits. The gradient reaches the logits in their own dtype.

    Args:
        check_finite (bool): Check the selected backbone features for NaN
            and Inf at every forward. Default: False.
        check_labels (bool): Check that the labels are classes or
            ``ignore_index`` before computing the losses. Default: False.
        **kwargs: :class:`BaseDecodeHead` arguments.
    """

    def __init__(self, in_channels, channels, *, num_classes,
                 check_finite=False, check_labels=False, **kwargs):
        owner = type(self).__name__
        if isinstance(in_channels, (list, tuple)):
            for i, c in enumerate(in_channels):
                check_channels(owner, f'in_channels[{i}]', c)
        else:
            check_channels(owner, 'in_channels', in_channels)
        check_channels(owner, 'channels', channels)
        check_positive_int(owner, 'num_classes', num_classes)
        super().__init__(
            in_channels, channels, num_classes=num_classes, **kwargs)
        self.check_finite = check_finite
        self.check_labels = check_labels

    def _transform_inputs(self, inputs):
        """Check the backbone outputs, then select them as MMSeg does."""
        check_head_inputs(self, inputs, self.check_finite)
        return super()._transform_inputs(inputs)

    def loss_by_feat(self, seg_logits, batch_data_samples):
        """Check the labels if asked to, then compute MMSeg's losses (on
        float32 logits, see the class docstring)."""
        if self.check_labels:
            check_gt_sem_seg(batch_data_samples, self.num_classes,
                             self.ignore_index, type(self).__name__)
        if seg_logits.dtype in (torch.float16, torch.bfloat16):
            seg_logits = seg_logits.float()
        return super().loss_by_feat(seg_logits, batch_data_samples)
