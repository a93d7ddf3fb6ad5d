from .onnx_export import (DEFAULT_EXPORTER, SegmentorONNXWrapper,
                          dynamo_exporter_available, export_onnx, verify_onnx)

__all__ = [
    'DEFAULT_EXPORTER', 'SegmentorONNXWrapper', 'dynamo_exporter_available',
    'export_onnx', 'verify_onnx'
]
