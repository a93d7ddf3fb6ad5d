"""Classifier of Full-Resolution Residual Networks."""
from mmseg.registry import MODELS
from .checked_decode_head import CheckedDecodeHead


@MODELS.register_module()
class FRRNHead(CheckedDecodeHead):
    """The 1x1 classifier of FRRN (Fig. 2b of the paper).

    `Full-Resolution Residual Networks for Semantic Segmentation in Street
    Scenes <https://arxiv.org/abs/1611.08323>`_ ends with a 1x1 convolution
    with bias from the 48 channels of the last residual unit to the class
    scores. This head is exactly that: ``_forward_feature`` selects the
    backbone feature map (there are no convolutions before the classifier)
    and ``forward`` applies ``cls_seg`` to it, with no dropout by default.
    Losses, resizing and prediction come from :class:`BaseDecodeHead`.

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H, W).

    Args:
        in_channels (int): Channels of the backbone feature map.
            Default: 48.
        channels (int | None): Must equal ``in_channels`` (there is no
            convolution to change it); None means ``in_channels``.
            Default: None.
        dropout_ratio (float): Dropout before the classifier; the paper uses
            none. Default: 0.
        **kwargs: Other arguments of :class:`BaseDecodeHead`, e.g.
            ``num_classes``, ``loss_decode``, ``align_corners``, and
            ``check_finite`` and ``check_labels`` (default False) of
            :class:`CheckedDecodeHead`.

    Bad input fails early and by name (:class:`CheckedDecodeHead`):
    non-positive widths or ``num_classes`` at build time; an ``in_index``
    beyond the backbone's outputs or a width other than ``in_channels`` at
    every forward; with the opt-in checks, NaN / Inf in the feature map
    and labels outside ``[0, num_classes)`` other than ``ignore_index``.
    """

    def __init__(self, in_channels=48, channels=None, dropout_ratio=0.,
                 **kwargs):
        if channels is None:
            channels = sum(in_channels) if isinstance(
                in_channels, (list, tuple)) else in_channels
        super().__init__(
            in_channels, channels, dropout_ratio=dropout_ratio, **kwargs)
        if self.channels != self.in_channels:
            raise ValueError(
                'FRRNHead has no convolution before the classifier, so '
                f'channels must equal in_channels ({self.in_channels}), got '
                f'{self.channels}')

    def _forward_feature(self, inputs):
        """The features the classifier sees: the selected backbone map.

        Args:
            inputs (list[Tensor]): Backbone outputs; ``inputs[in_index]``
                has shape (N, in_channels, H, W).

        Returns:
            Tensor: (N, in_channels, H, W).
        """
        return self._transform_inputs(inputs)

    def forward(self, inputs):
        """Classify every pixel of the selected feature map.

        Args:
            inputs (list[Tensor]): Backbone outputs; ``inputs[in_index]``
                has shape (N, in_channels, H, W).

        Returns:
            Tensor: Class logits, (N, out_channels, H, W).
        """
        return self.cls_seg(self._forward_feature(inputs))
