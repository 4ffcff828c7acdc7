"""An image folder larger than its float copy should need: peak memory and time of a margin round.

    python -m pytest benchmarks/test_speed_imagefolder.py -s
    SSLZOO_BENCH_IMAGES=5000 python -m pytest benchmarks/test_speed_imagefolder.py -s   # a quick check

Generates (in one process, into a temporary directory, or once into ``SSLZOO_BENCH_FOLDER`` and
reused from there by later runs of the same size) a folder of ``SSLZOO_BENCH_IMAGES``
(default 100,000) 64 x 64 RGB PNG images in 10 classes, ``ROOT/CLASS/IMAGE``, and a test folder of a
tenth as many: each image a class-coloured square at a class-dependent place on a noisy background,
so that the classes can be learned. Then runs, as a subprocess, twice (the first run reads the images
and writes the tensor cache, the second reads the cache)::

    sslzoo bench -s margin --dataset imagefolder -d root=ROOT -d test=TEST \\
        --labels 100 --budget 200 --query-size 100 --epochs 1

and measures each run's wall time and the peak resident memory of its processes (the command's and
its learner's: the high-water mark ``VmHWM`` of every process below it, read every 0.1 s, and
``getrusage(RUSAGE_CHILDREN)``), with the largest file-backed part (``RssFile``: the cache's mapped
pages, which the kernel may drop and read again) and anonymous part (``RssAnon``) seen. The pool's
float copy (what a run held before its inputs stayed uint8) is 4.9 GB at 100,000 images; the
requirement is a peak under 2 GB beyond the model's parameters. Results:
``benchmarks/results/speed_imagefolder.json``.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import speedlib
from PIL import Image

from sslzoo._contract.registry import default_registry

IMAGES = int(os.environ.get("SSLZOO_BENCH_IMAGES", "100000"))
FOLDER = os.environ.get("SSLZOO_BENCH_FOLDER")
CLASSES = 10
SIZE = 64
GB = 1e9
LIMIT_BEYOND_MODEL = 2 * GB


def generate(folder: Path, count: int, seed: int) -> None:
    """``count`` PNG images, ``folder/cCLASS/NNNNNN.png``, the classes in turn (kept when ``folder``
    holds them already)."""
    if sum(1 for _ in folder.glob("c*/*.png")) == count:
        return
    rng = np.random.default_rng(seed)
    colours = rng.integers(40, 256, size=(CLASSES, 3))
    for c in range(CLASSES):
        (folder / f"c{c}").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        c = i % CLASSES
        pixels = rng.integers(0, 60, size=(SIZE, SIZE, 3), dtype=np.uint8)
        top, left = 4 + 5 * (c // 5) * 4 + int(rng.integers(0, 6)), 4 + (c % 5) * 9 + int(rng.integers(0, 6))
        pixels[top:top + 16, left:left + 16] = colours[c]
        Image.fromarray(pixels).save(folder / f"c{c}" / f"{i:06d}.png", compress_level=1)


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        found += [int(c) for c in children]
        todo += [int(c) for c in children]
    return found


def _status(pid: int) -> dict[str, int]:
    """VmHWM, RssAnon and RssFile of ``pid`` in bytes (empty once it is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    fields = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name in ("VmHWM", "RssAnon", "RssFile"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


def bench(root: Path, test: Path, cache: Path, out: Path) -> dict[str, Any]:
    """One ``sslzoo bench -s margin`` run: wall seconds and peak memory of its processes."""
    command = [sys.executable, "-m", "sslzoo", "bench", "-s", "margin", "--dataset", "imagefolder",
               "-d", f"root={root}", "-d", f"test={test}", "--labels", "100", "--budget", "200",
               "--query-size", "100", "--epochs", "1", "-q", "--json-out", str(out)]
    environ = {**os.environ, "SSLZOO_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    peak = {"VmHWM": 0, "RssAnon": 0, "RssFile": 0}
    per_process: dict[str, int] = {}
    start = time.perf_counter()
    process = subprocess.Popen(command, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while process.poll() is None:
        for pid in [process.pid, *_descendants(process.pid)]:
            status = _status(pid)
            for name, value in status.items():
                peak[name] = max(peak[name], value)
            if status:
                label = "command" if pid == process.pid else f"child {pid}"
                per_process[label] = max(per_process.get(label, 0), status["VmHWM"])
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    output = process.stdout.read() if process.stdout else ""
    assert process.returncode == 0, output
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux: KiB
    return {"seconds": round(seconds, 1), "peak_rss_gb": round(max(peak["VmHWM"], children) / GB, 3),
            "peak_rss_anon_gb": round(peak["RssAnon"] / GB, 3), "peak_rss_file_gb": round(peak["RssFile"] / GB, 3),
            "peak_rss_gb_per_process": {k: round(v / GB, 3) for k, v in per_process.items() if v > 0.05 * GB}}


def model_bytes() -> int:
    """The parameters of the image folder's default model (``cnn``) for 3 x 64 x 64 inputs, 10 classes."""
    model = default_registry().models.get("cnn").obj.build((3, SIZE, SIZE), CLASSES)
    return sum(p.numel() * p.element_size() for p in model.parameters())


def test_margin_on_a_large_image_folder_stays_within_two_gb_beyond_the_model() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(FOLDER) if FOLDER else Path(tmp)
        began = time.perf_counter()
        generate(images / "root", IMAGES, seed=0)
        generate(images / "test", max(CLASSES, IMAGES // 10), seed=1)
        generating = time.perf_counter() - began
        base = Path(tmp)
        first = bench(images / "root", images / "test", base / "cache", base / "first.json")
        second = bench(images / "root", images / "test", base / "cache", base / "second.json")
        cache_bytes = sum(p.stat().st_size for p in (base / "cache").iterdir())
    parameters = model_bytes()
    float_copy = (IMAGES + max(CLASSES, IMAGES // 10)) * 3 * SIZE * SIZE * 4
    results = {"images": IMAGES, "test_images": max(CLASSES, IMAGES // 10), "size": f"{SIZE}x{SIZE} RGB",
               "generation_s": round(generating, 1), "model_parameter_bytes": parameters,
               "cache_bytes": cache_bytes, "float_copy_gb": round(float_copy / GB, 2),
               "first_run_cache_build": first, "second_run_cache_hit": second,
               "second_over_first_time": round(second["seconds"] / first["seconds"], 3),
               "limit_beyond_model_gb": LIMIT_BEYOND_MODEL / GB}
    path = speedlib.save("speed_imagefolder", {"results": results,
                                               "note": "a shared 2-core machine: times vary with its load"})
    print(f"\n{IMAGES} images: generated in {generating:.0f} s; cache {cache_bytes / GB:.2f} GB; model "
          f"{parameters / 1e6:.1f} MB; float copy {float_copy / GB:.2f} GB  ({path})")
    for name, row in (("first (cache build)", first), ("second (cache hit)", second)):
        print(f"{name:<22}{row['seconds']:>8.1f} s  peak {row['peak_rss_gb']:.2f} GB (anon "
              f"{row['peak_rss_anon_gb']:.2f}, file {row['peak_rss_file_gb']:.2f})")
    for row in (first, second):
        assert row["peak_rss_gb"] * GB < parameters + LIMIT_BEYOND_MODEL, row
