"""The C heap keeps the memory of freed tensors: the next step reuses it without page faults."""

from __future__ import annotations

import platform
import resource

import pytest
import torch

from sslzoo import allocator


def minor_faults(fn) -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    fn()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def step() -> None:
    """Four 12 MB temporaries alive at once, then freed, like a cnn step's activations at batch 256."""
    temporaries = [torch.ones(3 * 2**20) for _ in range(4)]
    sum(t.sum() for t in temporaries)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc thresholds")
def test_a_steps_freed_memory_is_reused_without_page_faults():
    assert allocator.keep_freed_memory()
    assert allocator.keep_freed_memory()  # once per process, then a no-op
    step()
    step()
    # 12 000 pages of 4 KiB when the memory goes back to the OS after every step; none when kept
    assert minor_faults(step) < 500
