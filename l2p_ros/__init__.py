"""l2p_ros: adaptive split inference of YOLOv3 between an edge computer and a cloud GPU server."""

__version__ = "0.1.0"
