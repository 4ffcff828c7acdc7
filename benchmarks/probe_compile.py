"""Does torch.compile pay for training on this machine? A bare step loop, eager vs compiled.

    python benchmarks/probe_compile.py      # writes benchmarks/results/speed_compile.json

Same model (channels_last), fused Adam, device-resident random data, 4096 images per timing, 1 thread
(SSLZOO_BENCH_THREADS); each mode timed twice, interleaved; compile warm-up reported separately.
"""
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import speedlib
import time, torch, torch.nn.functional as F
from sslzoo import models
speedlib.configure_threads()
OUT = {}
torch.manual_seed(0)
def loop(model, opt, x, y, bs):
    for s in range(0, x.shape[0], bs):
        loss = F.cross_entropy(model(x[s:s+bs]), y[s:s+bs]); opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
for name, bs in [("cnn", 32), ("mlp", 1024)]:
    x = torch.randn(4096, 1, 28, 28); y = torch.randint(0, 10, (4096,))
    res = {}
    for mode in ["eager", "compiled", "eager2", "compiled2"]:
        if mode in ("eager", "compiled"):
            m = getattr(models, name)((1,28,28), 10).to(memory_format=torch.channels_last)
            opt = torch.optim.Adam(m.parameters(), lr=1e-3, fused=True)
            f = torch.compile(m) if mode == "compiled" else m
            t = time.perf_counter(); loop(f, opt, x[:bs*4], y[:bs*4], bs); warm = time.perf_counter() - t
            fn = (f, opt)
            if mode == "compiled": cf = fn; cwarm = warm
            else: ef = fn
        f, opt = cf if mode.startswith("compiled") else ef
        t = time.perf_counter(); loop(f, opt, x, y, bs); dt = time.perf_counter() - t
        res[mode] = 4096 / dt
    print(name, bs, {k: round(v) for k, v in res.items()}, "compile warm-up s", round(cwarm, 1), flush=True)
    OUT[f"{name}-bs{bs}"] = {"images_per_s": {k: round(v) for k, v in res.items()}, "compile_warmup_s": round(cwarm, 1),
                             "compiled_over_eager": round((res["compiled"] + res["compiled2"]) / (res["eager"] + res["eager2"]), 2)}
speedlib.save("speed_compile", {"threads": speedlib.THREADS, "runs": OUT})
