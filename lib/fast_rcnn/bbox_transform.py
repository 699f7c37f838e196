"""The release's module for the box regression parameterization; the code is in core.boxes."""
from core.boxes import bbox_transform, bbox_transform_inv, clip_boxes  # noqa: F401
