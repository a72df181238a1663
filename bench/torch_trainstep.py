# PyTorch baseline for bench/trainstep.ts: the same smallcnn, same batch sizes,
# same thread count, timed the same way (median of `steps` steps after `warmup`
# untimed ones). Prints one JSON line per case.
import json, sys, time
import torch
import torch.nn as nn

from torch_models import smallcnn  # bench/ is on sys.path (the script's folder)

threads = int(sys.argv[1])
steps = int(sys.argv[2])
warmup = int(sys.argv[3]) if len(sys.argv) > 3 else 3
torch.set_num_threads(threads)
torch.manual_seed(0)


def timeit(fn, steps):
    for _ in range(warmup):
        fn()
    t = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return sorted(t)[len(t) // 2]


for (c, h, w) in [(1, 28, 28), (3, 32, 32)]:
    model = smallcnn(c, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-5)
    crit = nn.CrossEntropyLoss()
    x = torch.randn(256, c, h, w)
    y = torch.randint(0, 10, (256,))

    def step():
        opt.zero_grad()
        loss = crit(model(x), y)
        loss.backward()
        opt.step()

    t = timeit(step, steps)
    print(json.dumps({"case": f"train {c}x{h}x{w} b256", "images_per_s": 256 / t}), flush=True)
    model.eval()
    xf = torch.randn(512, c, h, w)

    def fwd():
        with torch.no_grad():
            model(xf)

    t = timeit(fwd, steps)
    print(json.dumps({"case": f"forward {c}x{h}x{w} b512", "images_per_s": 512 / t}), flush=True)
