"""The checks that RefineNetHead and FRRNHead share."""
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from ..blocks.frrn_blocks import _check_positive_int
from ..blocks.refinenet_blocks import _check_width
from ..utils import check_gt_sem_seg, check_head_inputs


class CheckedDecodeHead(BaseDecodeHead):
    """:class:`BaseDecodeHead` that refuses bad input early and by name.

    What :class:`BaseDecodeHead` leaves to PyTorch is checked here, at the
    first point where it can be known:

    * at build time, ``in_channels``, ``channels`` and ``num_classes``
      must be positive integers (``BaseDecodeHead`` builds its classifier
      from them first; a 0 gave an empty classifier that predicts nothing,
      a negative value a tensor-creation error);
    * at every forward, before any computation
      (:func:`~mmseg_refinenet.models.utils.check_head_inputs`): ``in_index``
      within the backbone's outputs, their widths equal to ``in_channels``
      (otherwise PyTorch's convolution error names no config field), and
      no NaN or Inf in the selected features, which would otherwise give
      NaN logits, an all-zero arg-max prediction and a NaN loss that
      MMEngine trains on;
    * in ``loss_by_feat``
      (:func:`~mmseg_refinenet.models.utils.check_gt_sem_seg`): every label
      is in ``[0, num_classes)`` or ``ignore_index``. MMSeg's
      ``CrossEntropyLoss`` would fail with an ``IndexError`` inside
      ``cross_entropy`` on the CPU and a device-side assert on CUDA, which
      names neither the value nor the file.

    The value checks (finiteness, labels) read the tensors once and
    synchronise with the device once each; see
    :mod:`mmseg_refinenet.models.utils.checks` for the cost and for when
    they are skipped (tracing, export, ``torch.compile``).

    Args:
        check_finite (bool): Check the selected backbone features for NaN
            and Inf at every forward. Default: True.
        **kwargs: :class:`BaseDecodeHead` arguments.
    """

    def __init__(self, in_channels, channels, *, num_classes,
                 check_finite=True, **kwargs):
        owner = type(self).__name__
        if isinstance(in_channels, (list, tuple)):
            for i, c in enumerate(in_channels):
                _check_width(f'{owner} in_channels[{i}]', c)
        else:
            _check_width(f'{owner} in_channels', in_channels)
        _check_width(f'{owner} channels', channels)
        _check_positive_int(num_classes, 'num_classes', owner)
        super().__init__(
            in_channels, channels, num_classes=num_classes, **kwargs)
        self.check_finite = check_finite

    def _transform_inputs(self, inputs):
        """Check the backbone outputs, then select them as MMSeg does."""
        check_head_inputs(self, inputs, self.check_finite)
        return super()._transform_inputs(inputs)

    def loss_by_feat(self, seg_logits, batch_data_samples):
        """Check the labels, then compute MMSeg's losses."""
        check_gt_sem_seg(batch_data_samples, self.num_classes,
                         self.ignore_index, type(self).__name__)
        return super().loss_by_feat(seg_logits, batch_data_samples)
