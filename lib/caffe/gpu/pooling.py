"""MAX, AVE and STOCHASTIC pooling on the GPU over a stack of planes (num*channels, height, width): the device
counterparts of caffe.layers.pooling_kernels (same window rules; kernels/pooling.cu), used by the
Pooling layer and by LRN's WITHIN_CHANNEL region. Arguments are contiguous device arrays."""
from . import Kernel

_max_forward = Kernel('pooling.cu', 'max_pool_forward')
_max_backward = Kernel('pooling.cu', 'max_pool_backward')
_ave_forward = Kernel('pooling.cu', 'ave_pool_forward')
_ave_backward = Kernel('pooling.cu', 'ave_pool_backward')
_sto_train = Kernel('pooling.cu', 'stochastic_pool_forward_train')
_sto_test = Kernel('pooling.cu', 'stochastic_pool_forward_test')
_sto_test_backward = Kernel('pooling.cu', 'stochastic_pool_backward_test')


def _sizes(bottom, top):
    if bottom.shape[0] != top.shape[0]:
        raise ValueError('bottom has %d planes, top %d' % (bottom.shape[0], top.shape[0]))
    return bottom.shape[1], bottom.shape[2], top.shape[1], top.shape[2]


def max_pool_forward(bottom, kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w, top, argmax):
    """top = max over each window; argmax (int32, top's shape) = its index h*width + w."""
    height, width, out_h, out_w = _sizes(bottom, top)
    if argmax.shape != top.shape:
        raise ValueError('argmax must have the shape of top')
    _max_forward(top.size, bottom, height, width, out_h, out_w, kernel_h, kernel_w, pad_h, pad_w,
                 stride_h, stride_w, top, argmax)


def max_pool_backward(top_diff, argmax, kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w,
                      bottom_diff):
    """Overwrites bottom_diff with the top diffs routed to (and summed at) their argmax."""
    height, width, out_h, out_w = _sizes(bottom_diff, top_diff)
    _max_backward(bottom_diff.size, top_diff, argmax, height, width, out_h, out_w, kernel_h,
                  kernel_w, pad_h, pad_w, stride_h, stride_w, bottom_diff)


def ave_pool_forward(bottom, kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w, top):
    """top = sum over the window inside the image / window size clipped to in + pad."""
    height, width, out_h, out_w = _sizes(bottom, top)
    _ave_forward(top.size, bottom, height, width, out_h, out_w, kernel_h, kernel_w, pad_h, pad_w,
                 stride_h, stride_w, top)


def ave_pool_backward(top_diff, kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w,
                      bottom_diff):
    """Overwrites bottom_diff with each top diff / its pool size spread over its window."""
    height, width, out_h, out_w = _sizes(bottom_diff, top_diff)
    _ave_backward(bottom_diff.size, top_diff, height, width, out_h, out_w, kernel_h, kernel_w,
                  pad_h, pad_w, stride_h, stride_w, bottom_diff)


def stochastic_pool_forward_train(bottom, kernel_h, kernel_w, stride_h, stride_w, uniform, top,
                                  index):
    """top = the value each window draws by the uniforms (top's shape); index (int32) = its
    position h*width + w (see pooling_kernels.stochastic_pool_forward_train)."""
    height, width, out_h, out_w = _sizes(bottom, top)
    _sto_train(top.size, bottom, height, width, out_h, out_w, kernel_h, kernel_w, stride_h,
               stride_w, uniform, top, index)


def stochastic_pool_forward_test(bottom, kernel_h, kernel_w, stride_h, stride_w, top,
                                 window_sum):
    """top = sum(x^2) / sum(x) per window (0 where sum(x) <= 0); window_sum = sum(x)."""
    height, width, out_h, out_w = _sizes(bottom, top)
    _sto_test(top.size, bottom, height, width, out_h, out_w, kernel_h, kernel_w, stride_h,
              stride_w, top, window_sum)


def stochastic_pool_backward_test(top_diff, bottom, top, window_sum, kernel_h, kernel_w,
                                  stride_h, stride_w, bottom_diff):
    """Overwrites bottom_diff with the gradient of the test-time weighted average."""
    height, width, out_h, out_w = _sizes(bottom_diff, top_diff)
    _sto_test_backward(bottom_diff.size, top_diff, bottom, top, window_sum, height, width,
                       out_h, out_w, kernel_h, kernel_w, stride_h, stride_w, bottom_diff)
