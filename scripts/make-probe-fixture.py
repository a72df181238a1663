#!/usr/bin/env python3
"""The reference's AlexNet linear-probe taps, for test/probe.test.ts.

  make-probe-fixture.py OUT.pth

Builds the reference's AlexNet (archspec small, BN variant, the class in
make-zoo-fixtures.py) with random weights and BN statistics, runs two random
224 px images in eval mode, and records the output of the ReLU after each conv
block (features.2, .6, .10, .13, .16 = the reference's probed layers [1, 4, 7,
9, 11] once its BN is folded into the convs) downsampled as
yukimasano/self-label eval_linear_probes.py does: MaxPool2d(6, 6, 3),
(4, 4, 0), (3, 3, 1), (3, 3, 1), (2, 2, 0), flattened. Writes one torch.save
dict: the `features.*` tensors (the taps do not depend on the classifier, which
is left out to keep the file at ~10 MB), "input", and "tap.conv1".."tap.conv5".
Generated at test time (cached by the test per script version), not committed.
"""
import collections
import importlib.util
import os
import sys

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("zoo", os.path.join(HERE, "make-zoo-fixtures.py"))
zoo = importlib.util.module_from_spec(spec)
spec.loader.exec_module(zoo)

TAPS = [("conv1", 2, nn.MaxPool2d(6, stride=6, padding=3)),
        ("conv2", 6, nn.MaxPool2d(4, stride=4, padding=0)),
        ("conv3", 10, nn.MaxPool2d(3, stride=3, padding=1)),
        ("conv4", 13, nn.MaxPool2d(3, stride=3, padding=1)),
        ("conv5", 16, nn.MaxPool2d(2, stride=2, padding=0))]


def main(out):
    g = torch.Generator().manual_seed(20200101)
    torch.manual_seed(5)
    m = zoo.build("alexnet", [10], "small")
    zoo.randomize_bn(m, g)
    # ReLUs are in place in the reference: record their outputs with hooks
    got = {}
    for name, idx, pool in TAPS:
        def hook(mod, inp, outp, name=name, pool=pool):
            got[name] = pool(outp.detach().clone()).flatten(1)
        m.features[idx].register_forward_hook(hook)
    m.eval()
    x = torch.randn(2, 3, 224, 224, generator=g)
    with torch.no_grad():
        m(x)
    d = collections.OrderedDict()
    for k, v in m.state_dict().items():
        if k.startswith("features.") and not k.endswith("num_batches_tracked"):
            d[k] = v
    d["input"] = x
    for name, _, _ in TAPS:
        d["tap." + name] = got[name].contiguous()
    torch.save(d, out)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
