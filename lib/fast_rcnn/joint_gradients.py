"""How large the coordinate gradient of non-approximate joint training (paper Sec. 3.2) is next
to the rest: one forward pass of a training net, then its backward pass twice, with the proposal
layer's coordinate backward off (approximate joint training: the RPN's box regression learns from
the RPN's own loss only) and on. The difference is what the detector's loss adds through the
proposals' coordinates; it reaches rpn_bbox_pred and every layer below it, and nothing above the
proposal layer.
"""
import numpy as np


def proposal_layer(net):
    """The net's proposal layer with a switchable coordinate backward (rpn.proposal_layer)."""
    found = [layer for layer in net.layers if hasattr(layer, 'backprop_coords')]
    if not found:
        raise ValueError('the net has no proposal layer with a coordinate backward '
                         '(rpn.proposal_layer.ProposalLayer)')
    return found[0]


def _param_gradients(net):
    for blobs in net.params.values():
        for blob in blobs:
            blob.diff[...] = 0
    net.backward()
    return {name: [blob.diff.astype(np.float64) for blob in blobs]
            for name, blobs in net.params.items()}


def _norm(arrays):
    return float(np.sqrt(sum(float(np.sum(a * a)) for a in arrays)))


def gradient_parts(net):
    """Runs net forward once (its data layer draws the next minibatch) and backward with the
    coordinate backward off and on. Returns {layer name: (norm of the approximate gradient of the
    layer's parameters, norm of the coordinate part)}, plus the same for the whole net under
    None. The proposal layer's switch is left as it was."""
    layer = proposal_layer(net)
    was = layer.backprop_coords
    net.forward()
    try:
        layer.backprop_coords = False
        approx = _param_gradients(net)
        layer.backprop_coords = True
        full = _param_gradients(net)
    finally:
        layer.backprop_coords = was
    parts = {name: [f - a for f, a in zip(full[name], approx[name])] for name in approx}
    out = {name: (_norm(approx[name]), _norm(parts[name])) for name in approx}
    out[None] = (_norm([a for arrays in approx.values() for a in arrays]),
                 _norm([p for arrays in parts.values() for p in arrays]))
    return out
