"""glibc's malloc told to keep the memory a job frees, instead of returning it and faulting it in again.

By default glibc hands the top of the heap back to the system once more than a (moving) threshold of
it is free, and serves large blocks from fresh mappings it unmaps when they are freed. A training
step frees and reallocates the same few MB of temporaries every step (activations, gradients, Adam's
intermediates), so every step faulted in and zeroed fresh pages: at batch size 2 on the CPU, 3.1
million page faults in one cell and a tenth of its time in the kernel. With fixed thresholds the
freed memory is reused. Where memory lies never changes a number: torch aligns every CPU tensor to 64
bytes wherever it is allocated.
"""

from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 128 << 20  # free memory kept at the top of the heap before any is returned
MMAP_THRESHOLD = 32 << 20  # blocks served by their own mapping (glibc's largest allowed value)


def keep_freed_memory() -> bool:
    """Set the thresholds for this process (and the processes it forks); False where there is no glibc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
