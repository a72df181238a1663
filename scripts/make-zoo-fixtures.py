#!/usr/bin/python3
"""Fixtures for the model zoo and the .pth importer (Debian's python3-torch and
python3-torchvision; run with /usr/bin/python3).

  make-zoo-fixtures.py                 write the small committed fixtures into
                                       test/fixtures/zoo/ (structure lists, a
                                       smallcnn checkpoint with PyTorch's
                                       logits, importer edge cases, a
                                       malicious checkpoint)
  make-zoo-fixtures.py --full OUTDIR   write the large forward/gradient
                                       fixtures (torchvision resnet18/50 and the
                                       reference's AlexNet with random weights,
                                       45-230 MB each) into OUTDIR; the tests
                                       call this at test time instead of
                                       committing them

Everything is seeded; the committed files are reproducible.
"""
import collections
import copy
import io
import json
import os
import sys
import zipfile
import zlib

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

torch.set_num_threads(2)
HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "test", "fixtures", "zoo")


# ---------------------------------------------------------------- models

# The reference's AlexNet (self-label models/alexnet.py, BN variant), written
# out: per-conv (filters, kernel, stride, pad) or "M" (max pool 3, stride 2).
ALEXNET_CFG = {
    "big": [(96, 11, 4, 2), "M", (256, 5, 1, 2), "M", (384, 3, 1, 1), (384, 3, 1, 1), (256, 3, 1, 1), "M"],
    "small": [(64, 11, 4, 2), "M", (192, 5, 1, 2), "M", (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1), "M"],
}


class Heads(nn.Module):
    """Features -> heads named top_layer (one head) or top_layer0.. (several)."""

    def add_heads(self, dim, ncl):
        self.nheads = len(ncl)
        if len(ncl) == 1:
            self.top_layer = nn.Linear(dim, ncl[0])
        else:
            for i, k in enumerate(ncl):
                setattr(self, "top_layer%d" % i, nn.Linear(dim, k))

    def heads(self, f):
        if self.nheads == 1:
            return [self.top_layer(f)]
        return [getattr(self, "top_layer%d" % i)(f) for i in range(self.nheads)]


class AlexNet(Heads):
    def __init__(self, size, ncl):
        super().__init__()
        layers, cin = [], 3
        for v in ALEXNET_CFG[size]:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
            else:
                layers += [nn.Conv2d(cin, v[0], kernel_size=v[1], stride=v[2], padding=v[3]), nn.BatchNorm2d(v[0]),
                           nn.ReLU(inplace=True)]
                cin = v[0]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
                                        nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True))
        self.add_heads(4096, ncl)

    def feats(self, x):
        return self.classifier(self.features(x).view(x.size(0), 256 * 6 * 6))

    def forward(self, x):
        return self.heads(self.feats(x))


class ResNet(Heads):
    """torchvision's resnet with fc removed and our heads; small: 3x3 stem, no max pool."""

    def __init__(self, depth, ncl, small):
        super().__init__()
        net = getattr(torchvision.models, "resnet%d" % depth)()
        if small:
            net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        dim = net.fc.in_features
        del net.fc
        for name, mod in net.named_children():
            setattr(self, name, mod)
        self.add_heads(dim, ncl)

    def feats(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x):
        return self.heads(self.feats(x))


class SmallCNN(Heads):
    def __init__(self, cin, ncl):
        super().__init__()

        def cbr(i, o):
            return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(*cbr(cin, 32), *cbr(32, 32), nn.MaxPool2d(2), *cbr(32, 64), *cbr(64, 64),
                                      nn.MaxPool2d(2), *cbr(64, 128))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.add_heads(128, ncl)

    def feats(self, x):
        return torch.flatten(self.avgpool(self.features(x)), 1)

    def forward(self, x):
        return self.heads(self.feats(x))


def build(arch, ncl, spec="big", small=False, cin=3):
    if arch == "alexnet":
        return AlexNet(spec, ncl)
    if arch == "smallcnn":
        return SmallCNN(cin, ncl)
    return ResNet(int(arch[6:]), ncl, small)


def randomize_bn(model, g):
    """Random BN affine and running statistics, so loading them is tested."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 0.5 + 0.75)
                m.num_batches_tracked.fill_(7)
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0, 0.01, generator=g)
                m.bias.normal_(0, 0.01, generator=g)


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


# ---------------------------------------------------------------- committed fixtures

STRUCTURE_CASES = [
    # (arch, archspec, small_input, ncl, input [C,H,W])
    ("alexnet", "big", False, [10], [3, 224, 224]),
    ("alexnet", "small", False, [30, 20, 10], [3, 224, 224]),
    ("resnet18", "big", False, [10], [3, 224, 224]),
    ("resnet18", "big", True, [10, 20], [3, 32, 32]),
    ("resnet50", "big", False, [300, 200], [3, 224, 224]),
    ("resnet50", "big", True, [100], [3, 32, 32]),
]


def structure():
    out = []
    for arch, spec, small, ncl, shape in STRUCTURE_CASES:
        torch.manual_seed(0)
        m = build(arch, ncl, spec, small).eval()
        sd = m.state_dict()
        with torch.no_grad():
            x = torch.zeros(1, *shape)
            f = m.feats(x)
            ys = m.heads(f)
        out.append({
            "arch": arch, "archSpec": spec if arch == "alexnet" else None, "smallInput": small, "numClasses": ncl,
            "inputShape": shape,
            "tensors": [[k, list(v.shape)] for k, v in sd.items() if not k.endswith("num_batches_tracked")],
            "numBatchesTracked": [k for k in sd if k.endswith("num_batches_tracked")],
            "numParameters": sum(p.numel() for p in m.parameters()),
            "featureShape": list(f.shape), "logitShapes": [list(y.shape) for y in ys],
        })
    return out


class Pwn:
    """An object whose unpickling would run a shell command (os.system)."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/selflabel-native-pwned",))


def committed():
    os.makedirs(FIX, exist_ok=True)
    with open(os.path.join(FIX, "structure.json"), "w") as fh:
        json.dump({"torch": torch.__version__, "torchvision": torchvision.__version__, "cases": structure()}, fh)
        fh.write("\n")

    # smallcnn (1x8x8, heads [4, 6]) in the reference's checkpoint form with
    # DataParallel names, pseudo-labels, and PyTorch's logits for an input
    g = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    m = build("smallcnn", [4, 6], cin=1)
    randomize_bn(m, g)
    m.eval()
    x = torch.randn(3, 1, 8, 8, generator=g)
    with torch.no_grad():
        ys = m(x)
        f = m.feats(x)
    sd = collections.OrderedDict(("module." + k, v) for k, v in m.state_dict().items())
    L = torch.randint(0, 4, (2, 5), generator=g)
    torch.save({"state_dict": sd, "L": L, "epoch": 3, "optimizer": {"lr": 0.05, "nesterov": False}},
               os.path.join(FIX, "smallcnn-ref.pth"))
    with open(os.path.join(FIX, "smallcnn-ref.json"), "w") as fh:
        json.dump({"input": flat(x), "inputShape": [1, 8, 8], "numClasses": [4, 6], "logits": [flat(y) for y in ys],
                   "features": flat(f), "L": L.tolist()}, fh)
        fh.write("\n")

    # importer edge cases: dtypes, a transposed (non-contiguous) tensor, two
    # views of one storage, an int64 counter, bool
    base = torch.arange(12, dtype=torch.float32)
    edge = collections.OrderedDict([
        ("a.weight", torch.arange(6, dtype=torch.float32).reshape(2, 3)),
        ("b.weight", torch.arange(6, dtype=torch.float64).reshape(3, 2).t()),   # non-contiguous view
        ("c.weight", torch.tensor([0.5, -2.0, 65504.0], dtype=torch.float16)),
        ("d.weight", torch.tensor([1.5, -3.25], dtype=torch.bfloat16)),
        ("e.first", base[:6].view(2, 3)),   # shares base's storage
        ("e.second", base[6:]),
        ("bn.num_batches_tracked", torch.tensor(5)),
    ])
    torch.save(edge, os.path.join(FIX, "edge.pth"))
    # the same archive re-zipped with deflate (torch itself writes stored entries)
    with zipfile.ZipFile(os.path.join(FIX, "edge.pth")) as zin, \
            zipfile.ZipFile(os.path.join(FIX, "edge-deflate.pth"), "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            zout.writestr(item.filename, zin.read(item.filename))
    torch.save({"x.weight": torch.zeros(2), "evil": Pwn()}, os.path.join(FIX, "malicious.pth"))
    torch.save({"x.weight": torch.zeros(2, dtype=torch.int64)}, os.path.join(FIX, "int-weights.pth"))
    torch.save(torch.zeros(3), os.path.join(FIX, "bare-tensor.pth"))
    total = sum(os.path.getsize(os.path.join(FIX, f)) for f in os.listdir(FIX))
    print("wrote %s (%d files, %.0f KB)" % (FIX, len(os.listdir(FIX)), total / 1024))


# ---------------------------------------------------------------- large fixtures (test time)

FULL_CASES = [
    # name, arch, archspec, small, ncl, input shape, batch, checkpoint form
    ("resnet18", "resnet18", "big", False, [10, 7], [3, 224, 224], 2, "plain"),
    ("resnet18-small", "resnet18", "big", True, [10], [3, 32, 32], 2, "module"),
    ("resnet50-small", "resnet50", "big", True, [10], [3, 32, 32], 2, "reference"),
    ("alexnet-small", "alexnet", "small", False, [10], [3, 224, 224], 2, "plain"),
]


def full(outdir):
    os.makedirs(outdir, exist_ok=True)
    index = []
    for name, arch, spec, small, ncl, shape, n, form in FULL_CASES:
        g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        torch.manual_seed(2)
        m = build(arch, ncl, spec, small)
        randomize_bn(m, g)
        m.eval()
        x = torch.randn(n, *shape, generator=g)
        with torch.no_grad():
            ys = m(x)
            f = m.feats(x)
        sd = m.state_dict()
        if form == "module":
            sd = collections.OrderedDict(("module." + k, v) for k, v in sd.items())
        obj = {"state_dict": sd, "L": torch.randint(0, ncl[0], (len(ncl), 9), generator=g)} if form == "reference" else sd
        torch.save(obj, os.path.join(outdir, name + ".pth"))
        # inputs, outputs and gradients as a second checkpoint (read by our own
        # importer; faster than JSON), metadata as JSON
        io_ = collections.OrderedDict([("input", x), ("features", f)])
        for i, y in enumerate(ys):
            io_["logits%d" % i] = y
        rec = {"name": name, "arch": arch, "archSpec": spec, "smallInput": small, "numClasses": ncl,
               "inputShape": shape, "batch": n, "form": form}
        if arch.startswith("resnet"):
            # one training step's gradients (train-mode BN, mean over heads of
            # the mean cross-entropy): checks the residual backward
            m.train()
            y = torch.randint(0, min(ncl), (n,), generator=g)
            m.zero_grad()
            outs = m(x)
            loss = sum(F.cross_entropy(o, y) for o in outs) / len(outs)
            loss.backward()
            io_["labels"] = y
            rec["loss"] = float(loss)
            # the float64 gradient of the same step: the truth both float32
            # answers are measured against (resnet50 at batch 2 is
            # ill-conditioned: PyTorch's own float32 gradient is ~1% off it)
            m64 = copy.deepcopy(m).double()
            m64.zero_grad()
            outs64 = m64(x.double())
            loss64 = sum(F.cross_entropy(o, y) for o in outs64) / len(outs64)
            loss64.backward()
            rec["loss64"] = float(loss64)
            params = dict(m.named_parameters())
            params64 = dict(m64.named_parameters())
            pick = [k for k in ("conv1.weight", "bn1.weight", "bn1.bias", "layer1.0.conv1.weight", "layer1.1.bn2.weight",
                                "layer2.0.downsample.0.weight", "layer2.0.downsample.1.bias", "layer4.1.bn2.weight",
                                "layer4.2.bn3.weight", "top_layer.weight", "top_layer.bias", "top_layer0.weight")
                    if k in params]
            # PyTorch float32 once more in channels_last: other kernels, another
            # rounding, the second yardstick (test/zoo.test.ts). torchvision
            # resnet18 at 224 px, batch 2 has ReLU inputs and max-pool winners so
            # close to their kinks that rounding alone moves its gradients by
            # about 1e-3 of their scale; the NCHW run happens not to cross them
            mcl = copy.deepcopy(m).to(memory_format=torch.channels_last)
            mcl.zero_grad()
            outs_cl = mcl(x.contiguous(memory_format=torch.channels_last))
            (sum(F.cross_entropy(o, y) for o in outs_cl) / len(outs_cl)).backward()
            params_cl = dict(mcl.named_parameters())
            for k in pick:
                io_["grad." + k] = params[k].grad.detach().clone()
                io_["grad64." + k] = params64[k].grad.detach().clone()
                io_["gradcl." + k] = params_cl[k].grad.detach().contiguous().clone()
            rec["grads"] = pick
        torch.save(io_, os.path.join(outdir, name + "-io.pth"))
        with open(os.path.join(outdir, name + ".json"), "w") as fh:
            json.dump(rec, fh)
        index.append(name)
    with open(os.path.join(outdir, "index.json"), "w") as fh:
        json.dump(index, fh)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--full":
        full(sys.argv[2])
    elif len(sys.argv) == 1:
        committed()
    else:
        sys.exit(__doc__)
