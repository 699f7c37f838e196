"""The detection Python layers declare their blob counts; the runtime checks them before setup
and names the layer, its type and the expected blobs."""
import numpy as np
import pytest

import caffe
from caffe.testing import build_layer, layer_param


def python_layer(module, layer, param_str):
    param = layer_param('name: "under_test" type: "Python" python_param { module: "%s" '
                        'layer: "%s" }' % (module, layer))
    param.python_param.param_str = param_str
    return param


CASES = [
    # (module, class, param_str, bottom count, top count, words the error names)
    ('rpn.anchor_target_layer', 'AnchorTargetLayer', "'feat_stride': 16", 2, 4, ['bottom']),
    ('rpn.anchor_target_layer', 'AnchorTargetLayer', "'feat_stride': 16", 4, 3,
     ['rpn_labels', 'rpn_bbox_outside_weights']),
    ('rpn.proposal_layer', 'ProposalLayer', "'feat_stride': 16", 2, 1,
     ['rpn_cls_prob_reshape', 'im_info']),
    ('rpn.proposal_layer', 'ProposalLayer', "'feat_stride': 16", 3, 3, ['top']),
    ('rpn.proposal_target_layer', 'ProposalTargetLayer', "'num_classes': 3", 3, 5,
     ['rpn_rois', 'gt_boxes']),
    ('rpn.proposal_target_layer', 'ProposalTargetLayer', "'num_classes': 3", 2, 4,
     ['bbox_inside_weights']),
]


@pytest.mark.parametrize('module,cls,param_str,num_bottoms,num_tops,words', CASES)
def test_wrong_blob_counts_are_refused_before_setup(module, cls, param_str, num_bottoms,
                                                   num_tops, words):
    bottoms = [np.zeros((1, 18, 4, 4))] * num_bottoms
    with pytest.raises(caffe.CaffeError) as e:
        build_layer(python_layer(module, cls, param_str), bottoms, num_tops=num_tops)
    message = str(e.value)
    assert 'under_test' in message
    for word in words:
        assert word in message, message
