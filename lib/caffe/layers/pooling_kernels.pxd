# The AVE pooling of one plane, shared with the LRN kernels (lrn_kernels.pyx: WITHIN_CHANNEL is
# an AVE pooling of x^2 inside a chain of element-wise steps, fused there plane by plane).

cdef struct Window:
    Py_ssize_t height, width, out_h, out_w
    Py_ssize_t kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w

cdef Window _window(Py_ssize_t height, Py_ssize_t width, Py_ssize_t out_h, Py_ssize_t out_w,
                    int kernel_h, int kernel_w, int pad_h, int pad_w, int stride_h,
                    int stride_w) except *
cdef void _ave_plane(const float* x, const Window* g, float* y) noexcept nogil
cdef void _ave_plane_backward(const float* dy, const Window* g, float* dx) noexcept nogil
