"""The release's module for reference anchors; the code is in core.anchors."""
from core.anchors import generate_anchors, shifted_anchors  # noqa: F401
