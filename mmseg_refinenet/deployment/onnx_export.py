"""ONNX export of MMSeg segmentors (RefineNet, FRRN or any ``EncoderDecoder``).

The exported graph is the whole-image inference of MMSeg's
``EncoderDecoder.predict`` without test-time augmentation::

    inputs (N, 3, H, W) float32, normalised as the config's data_preprocessor
    does (mean/std, channel order)
        -> backbone -> decode head -> logits at the head's resolution
        -> bilinear resize to (H, W) with the head's ``align_corners``
    outputs: ``logits`` (N, C, H, W) float32 and, optionally,
             ``labels`` (N, H, W) int64 = argmax over C (for a head with one
             output channel: sigmoid(logits) > threshold, as MMSeg does).

The data preprocessor (BGR->RGB, mean/std, padding) stays outside the
graph, as in MMDeploy; its settings are written into the ONNX model's
metadata (``mean``, ``std``, ``bgr_to_rgb``) together with the class names
and the config, so a consumer can reproduce it. Sliding-window inference
(``test_cfg.mode='slide'``) is not part of the graph: run the exported
model on the crops yourself, or export with a shape that covers the image.

Every file is written under a temporary name and renamed when complete, so
an interrupted or failed export never leaves a half-written ``.onnx``.
"""
import inspect
import json
import os
import os.path as osp
import tempfile

import torch
import torch.nn as nn
import torch.nn.functional as F

EXPORTERS = ('dynamo', 'torchscript')


def dynamo_exporter_available() -> bool:
    """Whether this torch has the ``torch.export``-based ONNX exporter as
    :func:`export_onnx` uses it: ``torch.onnx.export(..., dynamo=True,
    external_data=False)`` and ``torch.export.Dim.AUTO`` (torch >= 2.6)."""
    params = inspect.signature(torch.onnx.export).parameters
    dim = getattr(getattr(torch, 'export', None), 'Dim', None)
    return ('dynamo' in params and 'external_data' in params
            and hasattr(dim, 'AUTO'))


#: ``'dynamo'`` where this torch has it, else ``'torchscript'``
DEFAULT_EXPORTER = ('dynamo'
                    if dynamo_exporter_available() else 'torchscript')


class SegmentorONNXWrapper(nn.Module):
    """A segmentor as a pure tensor function, ready for tracing/export.

    Args:
        segmentor (nn.Module): An MMSeg ``EncoderDecoder`` (or any model
            whose ``forward(inputs, mode='tensor')`` returns the decode
            head's logits and that has a ``decode_head``).
        with_labels (bool): Also return the per-pixel class map.
    """

    def __init__(self, segmentor, with_labels=True):
        super().__init__()
        head = getattr(segmentor, 'decode_head', None)
        if head is None:
            raise TypeError(
                f'{type(segmentor).__name__} has no decode_head; expected an '
                'MMSeg segmentor such as EncoderDecoder')
        self.segmentor = segmentor
        self.with_labels = with_labels
        self.align_corners = bool(getattr(head, 'align_corners', False))
        self.out_channels = int(getattr(head, 'out_channels', 0) or 0)
        self.threshold = float(getattr(head, 'threshold', 0.3) or 0.3)

    def forward(self, inputs):
        """(N, 3, H, W) -> logits (N, C, H, W) [, labels (N, H, W)]."""
        logits = self.segmentor(inputs, mode='tensor')
        logits = F.interpolate(
            logits,
            size=inputs.shape[2:],
            mode='bilinear',
            align_corners=self.align_corners)
        if not self.with_labels:
            return logits
        if self.out_channels == 1:
            labels = (logits.sigmoid() > self.threshold).squeeze(1).long()
        else:
            labels = logits.argmax(dim=1)
        return logits, labels


def _atomic_target(out_file):
    """A temporary path beside ``out_file`` (same file system)."""
    out_dir = osp.dirname(osp.abspath(out_file))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=out_dir, prefix='.' + osp.basename(out_file), suffix='.tmp')
    os.close(fd)
    return tmp


def export_onnx(segmentor,
                out_file,
                shape,
                batch_size=1,
                dynamic=False,
                exporter=DEFAULT_EXPORTER,
                opset=None,
                with_labels=True,
                metadata=None,
                check=None):
    """Export ``segmentor`` to ``out_file`` (written atomically).

    Args:
        segmentor (nn.Module): The segmentor, weights loaded, on the CPU.
        out_file (str): Path of the ``.onnx`` file to write.
        shape (tuple[int, int]): Example input height and width.
        batch_size (int): Example batch size. With ``dynamic=True`` at
            least 2 is used, so that torch.export does not specialise the
            batch dimension to 1.
        dynamic (bool): Make batch, height and width dynamic axes.
        exporter (str): ``'dynamo'`` (``torch.export``, torch's default and
            future path; torch >= 2.6) or ``'torchscript'`` (the legacy
            tracer). Default: ``'dynamo'`` where this torch has it, else
            ``'torchscript'``.
        opset (int | None): ONNX opset; None for the exporter's default.
        with_labels (bool): Add the ``labels`` output.
        metadata (dict | None): Written into the model's metadata_props
            (values that are not strings are JSON-encoded).
        check (callable | None): ``check(wrapper, path)``, run on the
            complete file under its temporary name before it takes the name
            ``out_file`` (e.g. :func:`verify_onnx`); an exception it raises
            leaves ``out_file`` as it was.

    Returns:
        SegmentorONNXWrapper: The wrapped model that was exported, in eval
        mode, for :func:`verify_onnx`.
    """
    import onnx
    if exporter not in EXPORTERS:
        raise ValueError(f'exporter={exporter!r}; expected one of '
                         f'{EXPORTERS}')
    if exporter == 'dynamo' and not dynamo_exporter_available():
        raise RuntimeError(
            "exporter='dynamo' needs torch >= 2.6 (torch.onnx.export with "
            f'dynamo=True and torch.export.Dim.AUTO); this is torch '
            f"{torch.__version__}. Use exporter='torchscript'.")
    height, width = (int(s) for s in shape)
    if dynamic:
        batch_size = max(batch_size, 2)
    wrapper = SegmentorONNXWrapper(segmentor, with_labels).eval()
    example = torch.randn(batch_size, 3, height, width)
    output_names = ['logits', 'labels'] if with_labels else ['logits']
    kwargs = dict(
        input_names=['inputs'],
        output_names=output_names,
        opset_version=opset)
    if 'dynamo' in inspect.signature(torch.onnx.export).parameters:
        # older torch has no such argument: its export is the tracer
        kwargs['dynamo'] = exporter == 'dynamo'
    if exporter == 'dynamo':
        # one file: every model of this plugin is far below protobuf's 2 GB
        kwargs['external_data'] = False
        if dynamic:
            auto = torch.export.Dim.AUTO
            kwargs['dynamic_shapes'] = ({0: auto, 2: auto, 3: auto}, )
    elif dynamic:
        axes = {0: 'batch', 2: 'height', 3: 'width'}
        kwargs['dynamic_axes'] = {'inputs': axes, 'logits': axes}
        if with_labels:
            kwargs['dynamic_axes']['labels'] = {
                0: 'batch',
                1: 'height',
                2: 'width'
            }
    tmp = _atomic_target(out_file)
    try:
        with torch.no_grad():
            torch.onnx.export(wrapper, (example, ), tmp, **kwargs)
        model = onnx.load(tmp)
        for key, value in (metadata or {}).items():
            entry = model.metadata_props.add()
            entry.key = str(key)
            entry.value = value if isinstance(value, str) else json.dumps(
                value)
        onnx.checker.check_model(model)
        onnx.save(model, tmp)
        if check is not None:
            check(wrapper, tmp)
        os.replace(tmp, out_file)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return wrapper


def verify_onnx(wrapper, onnx_file, shapes, rtol=1e-4, max_label_diff=1e-3):
    """Run ``onnx_file`` in onnxruntime and compare it with ``wrapper``.

    Args:
        wrapper (SegmentorONNXWrapper): The exported PyTorch model.
        onnx_file (str): The exported file.
        shapes (list[tuple[int, int, int, int]]): NCHW input shapes to try
            (random normal inputs, like normalised images).
        rtol (float): Largest allowed ``max|onnx - torch| / max|torch|`` of
            the logits.
        max_label_diff (float): Largest allowed fraction of pixels whose
            class differs (near-ties may flip).

    Returns:
        list[dict]: Per shape: ``shape``, ``max_abs_diff``, ``rel_diff``,
        ``label_diff`` (fraction or None) and ``ok``.
    """
    import numpy as np
    import onnxruntime as ort
    session = ort.InferenceSession(
        onnx_file, providers=['CPUExecutionProvider'])
    generator = torch.Generator().manual_seed(0)
    reports = []
    for shape in shapes:
        inputs = torch.randn(*shape, generator=generator)
        with torch.no_grad():
            expected = wrapper(inputs)
        expected = expected if isinstance(expected, tuple) else (expected, )
        outputs = session.run(None, {'inputs': inputs.numpy()})
        ref, got = expected[0].numpy(), outputs[0]
        if got.shape != ref.shape:
            reports.append(
                dict(
                    shape=list(shape),
                    max_abs_diff=None,
                    rel_diff=None,
                    label_diff=None,
                    ok=False,
                    error=f'output shape {got.shape}, expected {ref.shape}'))
            continue
        max_abs = float(np.abs(got - ref).max())
        rel = max_abs / max(float(np.abs(ref).max()), 1e-12)
        label_diff = None
        if len(expected) > 1:
            label_diff = float((outputs[1] != expected[1].numpy()).mean())
        ok = rel <= rtol and (label_diff is None
                              or label_diff <= max_label_diff)
        reports.append(
            dict(
                shape=list(shape),
                max_abs_diff=max_abs,
                rel_diff=rel,
                label_diff=label_diff,
                ok=ok))
    return reports
