from .onnx_export import SegmentorONNXWrapper, export_onnx, verify_onnx

__all__ = ['SegmentorONNXWrapper', 'export_onnx', 'verify_onnx']
