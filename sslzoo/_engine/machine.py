"""The machine a run ran on, as its record names it.

A run is deterministic on one CPU model and one torch thread count: the same seed gives the same
record there. Another CPU (other vector units, so other kernels: torch dispatches to the widest
instruction set it finds, :func:`torch.backends.cpu.get_cpu_capability`) or another thread count
(other reduction orders) gives numbers that differ in the last digits, and after training, by a few
tenths of a point of accuracy. The record's ``machine`` says which of these a run had, so that
``sslzoo compare`` can say when two sides ran on different hardware.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
from typing import Any

import torch

HARDWARE_KEYS = ("cpu", "cpu_capability", "gpu")
"""The keys of a record's ``machine`` that name its hardware (``threads`` is a setting of the run)."""


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``'s ``model name`` on Linux), else what the platform says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def gpu_driver() -> str | None:
    """The NVIDIA driver's version (``nvidia-smi``), or None where it cannot be asked."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        answer = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                                text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = answer.stdout.split()
    return lines[0] if lines else None


def machine(device: torch.device) -> dict[str, Any]:
    """What ran a run on ``device``: the CPU model, the instruction-set level torch dispatches its CPU
    kernels to, torch's intra-op thread count and, on a GPU, its name, CUDA version and driver."""
    found: dict[str, Any] = {"cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                             "threads": torch.get_num_threads()}
    if device.type == "cuda":
        found["gpu"] = torch.cuda.get_device_name(device)
        found["cuda"] = torch.version.cuda
        driver = gpu_driver()
        if driver is not None:
            found["gpu_driver"] = driver
    return found
