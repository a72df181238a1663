# PyTorch eager (cuDNN, TF32 off) baseline for bench/gpu_trainstep.ts, on the same
# card in the same run: smallcnn 3x32x32 and the reference's AlexNet (BN, small,
# 224 px, one head of 3000), batch 256, one SGD step each, the batch copied from
# host memory every step as ours is. Prints one JSON line per case, and one with
# the device's copy bandwidth (for the Sinkhorn floor).
# usage: python3 torch_gpu_trainstep.py STEPS [bandwidth-only]
import json, sys, time
import torch
import torch.nn as nn

from torch_models import smallcnn  # bench/ is on sys.path (the script's folder)

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 10
if not torch.cuda.is_available():
    print(json.dumps({"error": "torch: no CUDA device"}), flush=True)
    sys.exit(0)
dev = torch.device("cuda")
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
torch.manual_seed(0)


def bandwidth():
    n = 1 << 28  # 1 GiB of float32
    a = torch.empty(n, device=dev)
    b = torch.empty(n, device=dev)
    for _ in range(3):
        b.copy_(a)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    reps = 10
    for _ in range(reps):
        b.copy_(a)
    torch.cuda.synchronize()
    t = (time.perf_counter() - t0) / reps
    return 2 * 4 * n / t / 1e9  # read + write


print(json.dumps({"case": "copy bandwidth GB/s", "value": bandwidth(), "device": torch.cuda.get_device_name(0),
                  "torch": torch.__version__, "cudnn": torch.backends.cudnn.version()}), flush=True)
if len(sys.argv) > 2:
    sys.exit(0)


def alexnet_small(ncl):
    # the reference's models/alexnet.py, BN, cfg 'small'
    cfg = [(64, 11, 4, 2), 'M', (192, 5, 1, 2), 'M', (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1), 'M']
    layers, cin = [], 3
    for v in cfg:
        if v == 'M':
            layers.append(nn.MaxPool2d(3, 2))
        else:
            k, ks, s, p = v
            layers += [nn.Conv2d(cin, k, ks, s, p), nn.BatchNorm2d(k), nn.ReLU(inplace=True)]
            cin = k
    return nn.Sequential(nn.Sequential(*layers), nn.Flatten(),
                         nn.Dropout(0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
                         nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Linear(4096, ncl))


for name, make, shape, ncl in [("smallcnn 3x32x32 b256", lambda: smallcnn(3, 10), (3, 32, 32), 10),
                               ("alexnet-small 3x224x224 b256", lambda: alexnet_small(3000), (3, 224, 224), 3000)]:
    model = make().to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-5)
    crit = nn.CrossEntropyLoss()
    x = torch.randn(256, *shape)
    y = torch.randint(0, ncl, (256,))

    def step():
        opt.zero_grad()
        loss = crit(model(x.to(dev)), y.to(dev))
        loss.backward()
        opt.step()
        return loss.item()  # ours returns the loss to the host too

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    t = (time.perf_counter() - t0) / steps
    print(json.dumps({"case": f"train {name}", "images_per_s": 256 / t}), flush=True)
    del model, opt
    torch.cuda.empty_cache()
