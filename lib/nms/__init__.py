"""Non-maximum suppression: Cython (cpu_nms), PyCUDA (gpu_nms) and a numpy reference (py_cpu_nms).

Callers go through nms.dispatch.nms, naming the device.
"""
