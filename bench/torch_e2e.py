# PyTorch baseline for bench/e2e.ts: a small CPU port of the reference SeLa
# training loop (yukimasano/self-label main.py + sinkhornknopp.py, CPU variant),
# written for this bench, on Fashion-MNIST with our smallcnn (torch_models.py).
#
#   torch_e2e.py [--data DIR] [--epochs 2] [--nopts 5] [--batch 256] [--subset N]
#                [--threads 2] [--workers 1] [--seed 0] [--exp DIR] [--label-mode eval|train]
#
# What it does, as the reference does it, with our flags' values:
#   - labels start as a shuffled equipartition (i % K, permuted), K = 10, one head;
#   - SGD, lr 0.05 (our small-image preset; the reference's step schedule
#     x0.1 every 6 epochs, no drop within 2 epochs), momentum 0.9, weight decay
#     1e-5, cross-entropy on the current labels;
#   - training images through a DataLoader with torchvision transforms on PIL
#     images: RandomResizedCrop(28, scale=(0.5, 1)), RandomHorizontalFlip,
#     ToTensor, Normalize(0.5, 0.5);
#   - label passes on unaugmented images (Resize(32), CenterCrop(28): our level
#     0), at our schedule's times (lib/train/schedule.ts labelTimes: images seen
#     = epochs * N * (i / (nopts - 1))^2, the first before the first batch, one
#     pass per batch at most, the last after the final batch); the forward's
#     softmax goes into an N x K float64 numpy array and the reference's
#     Sinkhorn-Knopp runs on it in numpy float64 (lambda 25, error checked
#     every 10 iterations, tolerance 0.1, at most 10000 iterations as ours);
#   - BN in eval mode during label passes (our default --label-mode eval; the
#     reference leaves the network in train mode: --label-mode train);
#   - a checkpoint (model, optimizer, labels) after every epoch when --exp is given.
# Prints progress on stderr and one JSON line on stdout: wall seconds (after
# imports), data loading, training phase, label passes (forward and solve),
# training images/s, Sinkhorn iterations per pass, and the NMI of the final
# labels against the true classes (sklearn, arithmetic normalisation as ours).
import argparse
import gzip
import json
import os
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
p.add_argument("--epochs", type=int, default=2)
p.add_argument("--nopts", type=int, default=5)
p.add_argument("--batch", type=int, default=256)
p.add_argument("--subset", type=int, default=0)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--workers", type=int, default=1)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--exp", default="")
p.add_argument("--label-mode", choices=["eval", "train"], default="eval")
p.add_argument("--lr", type=float, default=0.05)
p.add_argument("--lrdrop", type=int, default=6)
p.add_argument("--wd", type=float, default=-5)
p.add_argument("--lamb", type=float, default=25)
p.add_argument("--tol", type=float, default=0.1)
p.add_argument("--max-iters", type=int, default=10000)
p.add_argument("--ncl", type=int, default=10)
args = p.parse_args()

# numpy's BLAS (the Sinkhorn's matrix-vector products) gets the same threads
for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(v, str(args.threads))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torchvision.transforms as tfs  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.metrics import normalized_mutual_info_score  # noqa: E402

from torch_models import smallcnn  # noqa: E402  (bench/ is on sys.path: the script's folder)
from sinkhorn_numpy import optimize_L_sk  # noqa: E402

t_start = time.time()
torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)
np.random.seed(args.seed)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def read_idx(path):
    """An IDX file (gzipped or not) as a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(name):
    for f in (name, name + ".gz"):
        if os.path.exists(os.path.join(args.data, f)):
            return os.path.join(args.data, f)
    sys.exit(f"torch_e2e.py: --data {args.data}: no {name}[.gz]")


images = read_idx(find("train-images-idx3-ubyte"))
truth = read_idx(find("train-labels-idx1-ubyte")).astype(np.int64)
if args.subset > 0:
    keep = np.sort(np.random.RandomState(args.seed).choice(len(images), args.subset, replace=False))
    images, truth = images[keep], truth[keep]
N, H, W = images.shape
K = args.ncl
t_load = time.time() - t_start


class Images(torch.utils.data.Dataset):
    """The uint8 images as PIL images through a transform; yields (image, index) like the reference's DataSet."""

    def __init__(self, transform):
        self.transform = transform

    def __len__(self):
        return N

    def __getitem__(self, i):
        return self.transform(Image.fromarray(images[i], mode="L")), i


norm = tfs.Normalize((0.5,), (0.5,))
train_tf = tfs.Compose([tfs.RandomResizedCrop(H, scale=(0.5, 1.0)), tfs.RandomHorizontalFlip(), tfs.ToTensor(), norm])
label_tf = tfs.Compose([tfs.Resize(round(H * 256 / 224)), tfs.CenterCrop(H), tfs.ToTensor(), norm])
train_loader = torch.utils.data.DataLoader(Images(train_tf), batch_size=args.batch, shuffle=True, num_workers=args.workers)
label_loader = torch.utils.data.DataLoader(Images(label_tf), batch_size=args.batch, shuffle=False, num_workers=args.workers)

model = smallcnn(1, K)
opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=10 ** args.wd)
xent = nn.CrossEntropyLoss()

# shuffled equipartition
L = torch.from_numpy(np.random.permutation(np.arange(N) % K)).long()

total = args.epochs * N
times = [0] if args.nopts == 1 else [round(total * (i / (args.nopts - 1)) ** 2) for i in range(args.nopts)]


def sinkhorn(PS):
    """The reference's optimize_L_sk on PS (N x K softmax, float64): labels and iterations."""
    labels, it, err, _ = optimize_L_sk(PS, args.lamb, args.tol, args.max_iters)
    return labels, it, err


passes = []


def label_pass(seen):
    global L
    t0 = time.time()
    was_training = model.training
    model.train(args.label_mode == "train")
    PS = np.zeros((N, K), dtype=np.float64)
    with torch.no_grad():
        for x, idx in label_loader:
            PS[idx.numpy()] = nn.functional.softmax(model(x), 1).numpy().astype(np.float64)
    model.train(was_training)
    t1 = time.time()
    labels, it, err = sinkhorn(PS)
    L = torch.from_numpy(labels).long()
    t2 = time.time()
    nmi = normalized_mutual_info_score(truth, labels)
    passes.append({"seen": seen, "forward_s": t1 - t0, "solve_s": t2 - t1, "iterations": it, "error": err, "nmi": nmi})
    log(f"label pass {len(passes)} (after {seen} images): {it} iterations, error {err:.3f}, "
        f"{t2 - t0:.1f} s (forward {t1 - t0:.1f} s), NMI {nmi:.3f}")


log(f"torch_e2e: PyTorch {torch.__version__}, {args.threads} threads, {args.workers} loader workers; "
    f"{N} images {H}x{W}, {args.epochs} epochs, batch {args.batch}, label passes at {times}")
seen = 0
train_s = 0.0
for epoch in range(args.epochs):
    lr = args.lr * 0.1 ** (epoch // args.lrdrop)
    for g in opt.param_groups:
        g["lr"] = lr
    model.train()
    t_epoch = time.time()
    in_pass = 0.0
    loss_sum = 0.0
    for x, idx in train_loader:
        if times and times[0] <= seen:
            times.pop(0)  # one pass per batch at most
            tp = time.time()
            label_pass(seen)
            in_pass += time.time() - tp
        loss = xent(model(x), L[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += x.shape[0]
        loss_sum += loss.item() * x.shape[0]
    secs = time.time() - t_epoch
    train_s += secs - in_pass
    log(f"epoch {epoch + 1}/{args.epochs}: loss {loss_sum / N:.4f}, lr {lr:.2e}, {secs:.1f} s, "
        f"{N / (secs - in_pass):.0f} img/s between label passes")
    if args.exp:
        os.makedirs(args.exp, exist_ok=True)
        torch.save({"epoch": epoch + 1, "state_dict": model.state_dict(), "optimizer": opt.state_dict(), "L": L},
                   os.path.join(args.exp, "checkpoint.pth.tar"))
if times:  # the last scheduled pass, after the final batch
    times = []
    label_pass(seen)
wall = time.time() - t_start
final_nmi = normalized_mutual_info_score(truth, L.numpy())
label_s = sum(q["forward_s"] + q["solve_s"] for q in passes)
print(json.dumps({
    "torch": torch.__version__, "threads": args.threads, "workers": args.workers, "images": N,
    "wall_s": wall, "load_s": t_load, "train_s": train_s, "train_images_per_s": seen / train_s,
    "label_s": label_s, "label_forward_s": sum(q["forward_s"] for q in passes),
    "label_solve_s": sum(q["solve_s"] for q in passes), "passes": passes, "nmi": final_nmi,
}), flush=True)
