# PyTorch baseline for bench/zoo.ts: the same architectures (built by
# scripts/make-zoo-fixtures.py), same batch sizes, same thread count, timed
# the same way (SGD momentum 0.9, wd 1e-5, mean cross-entropy over heads;
# the median of `steps` single-step timings after `warmup` untimed steps).
# Prints one JSON line per case.
import importlib.util
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

threads, steps, warmup = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
cases = json.loads(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)
spec = importlib.util.spec_from_file_location(
    "zoo", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "make-zoo-fixtures.py"))
zoo = importlib.util.module_from_spec(spec)
spec.loader.exec_module(zoo)
torch.set_num_threads(threads)   # the module sets 2; the bench decides

for c in cases:
    m = zoo.build(c["arch"], c["numClasses"], c.get("archSpec") or "big", c.get("smallInput", False))
    m.train()
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-5)
    n = c["batch"]
    x = torch.randn(n, *c["inputShape"])
    y = torch.randint(0, min(c["numClasses"]), (n,))

    def step():
        opt.zero_grad()
        outs = m(x)
        loss = sum(F.cross_entropy(o, y) for o in outs) / len(outs)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    t = sorted(times)[len(times) // 2]
    print(json.dumps({"case": c["name"], "images_per_s": n / t}), flush=True)
