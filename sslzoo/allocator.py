"""The C heap under CPU tensors: keep freed memory for the next step instead of returning it.

PyTorch's CPU tensors come from the C library's ``malloc``. With glibc's default thresholds, the
large temporaries of a training step (for ``cnn`` at batch 256: 12 MB activations, their
gradients, the max-pool indices) go back to the operating system when they are freed (``munmap``
or a trim of the heap's top), so the next step faults every page in again: about 6000 page faults
a step, a quarter of its time on 2 threads (docs/performance.md). Fixed, higher thresholds keep
that memory in the heap, where the next step reuses it. What is computed is unchanged; the
process keeps up to ``TRIM_THRESHOLD`` of freed memory at the top of its heap.
"""

from __future__ import annotations

import ctypes
import platform
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 64 * 2**20  # blocks below this come from the heap (glibc's default: 128 KiB, rising to 32 MiB)
TRIM_THRESHOLD = 256 * 2**20  # free memory at the heap's top kept for reuse (glibc's default: 128 KiB, or 2 × the above)

_kept = False


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds, once per process. False where the C library is not
    glibc (other allocators keep their own policy); True once set."""
    global _kept
    if _kept:
        return True
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL("libc.so.6")
    _kept = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _kept
