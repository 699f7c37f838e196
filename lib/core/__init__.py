"""The detection core: the paper's algorithms as pure functions with explicit arguments.

Nothing here reads the configuration, a network or a file, and nothing here imports a module
outside lib/core (but numpy and the loader of its compiled box-overlap kernel). Settings come as
arguments: plain values, or the small frozen settings classes defined here, whose defaults are
the paper's. The tools build them from `cfg` at their edge (fast_rcnn.experiment) and write them
into the param_str of the nets they run; the layers read them back from there.

  boxes.py          box geometry: widths, overlaps, the regression parameterization (Eq. 2),
                    clipping, small-box filter, formats
  anchors.py        reference anchors and their placement on the feature map (Sec. 3.1.1)
  sampling.py       foreground/background rules and minibatch sampling (Sec. 3.1.3, Fast R-CNN)
  anchor_targets.py RPN anchor labels, regression targets and loss weights (Sec. 3.1.2)
  roi_targets.py    the detector's RoI labels and class-specific regression targets
  proposals.py      RPN scores and deltas -> ranked, suppressed proposals (Sec. 3.3)
  dense_windows.py  the one-stage system's sliding windows (Table 10)

Shape shorthand used throughout: N images, A anchors per position, H x W a feature map,
K = H * W * A anchors, G ground-truth boxes, R proposals or RoIs, C classes (background
included). Boxes are (x1, y1, x2, y2) in pixels with inclusive corners: a box is x2 - x1 + 1
wide (the release's convention, used for every box in this project).
"""
