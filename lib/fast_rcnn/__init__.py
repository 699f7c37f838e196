"""Fast R-CNN detector: configuration, box math, NMS dispatch, training and testing."""
