"""The test suite's strategies: the public ones of :mod:`bkvcodec.testing`."""
from bkvcodec.testing import bkv_frame_bytes, bkv_frames, bkv_messages, bkv_streams

__all__ = ["bkv_frame_bytes", "bkv_frames", "bkv_messages", "bkv_streams"]
