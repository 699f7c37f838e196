"""The release's module names that its scripts import stay importable and are the project's
functions (docs/training_testing.md lists them)."""


def test_release_module_names_are_the_core_functions():
    import core.anchors
    import core.boxes
    import fast_rcnn.bbox_transform
    import rpn.generate_anchors
    import utils.cython_bbox
    assert fast_rcnn.bbox_transform.bbox_transform is core.boxes.bbox_transform
    assert fast_rcnn.bbox_transform.bbox_transform_inv is core.boxes.bbox_transform_inv
    assert fast_rcnn.bbox_transform.clip_boxes is core.boxes.clip_boxes
    assert rpn.generate_anchors.generate_anchors is core.anchors.generate_anchors
    assert rpn.generate_anchors.shifted_anchors is core.anchors.shifted_anchors
    # core.boxes.box_overlaps is the compiled kernel of the release's name.
    import numpy as np
    boxes = np.array([[0, 0, 9, 9], [5, 5, 14, 14]], dtype=np.float64)
    np.testing.assert_array_equal(utils.cython_bbox.bbox_overlaps(boxes, boxes),
                                  core.boxes.box_overlaps(boxes, boxes))


def test_fast_rcnn_config_keeps_the_release_keys():
    # The release's own Python layers read cfg[str(self.phase)] and these keys.
    from fast_rcnn.config import cfg
    for phase in ('TRAIN', 'TEST'):
        for key in ('RPN_PRE_NMS_TOP_N', 'RPN_POST_NMS_TOP_N', 'RPN_NMS_THRESH', 'RPN_MIN_SIZE',
                    'SCALES', 'MAX_SIZE', 'HAS_RPN', 'BBOX_REG'):
            assert key in cfg[phase]
    for key in ('RPN_POSITIVE_OVERLAP', 'RPN_NEGATIVE_OVERLAP', 'RPN_CLOBBER_POSITIVES',
                'RPN_FG_FRACTION', 'RPN_BATCHSIZE', 'RPN_BBOX_INSIDE_WEIGHTS',
                'RPN_POSITIVE_WEIGHT', 'BATCH_SIZE', 'FG_FRACTION', 'FG_THRESH', 'BG_THRESH_HI',
                'BG_THRESH_LO', 'BBOX_NORMALIZE_TARGETS_PRECOMPUTED', 'BBOX_NORMALIZE_MEANS',
                'BBOX_NORMALIZE_STDS', 'BBOX_INSIDE_WEIGHTS', 'IMS_PER_BATCH', 'USE_PREFETCH',
                'ASPECT_GROUPING', 'USE_FLIPPED'):
        assert key in cfg.TRAIN
    assert 'PIXEL_MEANS' in cfg and 'RNG_SEED' in cfg and 'USE_GPU_NMS' in cfg
