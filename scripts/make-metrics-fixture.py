#!/usr/bin/python3
"""Write test/fixtures/metrics.json: clustering metrics computed by scikit-learn
and scipy for fixed labelings, the reference values for test/metrics.test.ts.

Run with Debian's python (python3-sklearn, python3-scipy):
    /usr/bin/python3 scripts/make-metrics-fixture.py
Deterministic (seeded numpy Generator); keep the output small (< 200 KB).
"""
import json
import os
import sys

import numpy as np
import scipy
import sklearn
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix
from sklearn.metrics.cluster._expected_mutual_info_fast import expected_mutual_information

rng = np.random.default_rng(20240605)


def noisy(truth, k, noise, rng):
    """Clusters that follow the classes (class c -> cluster c % k, or split over
    several clusters when k > classes) with a fraction `noise` relabelled at random."""
    truth = np.asarray(truth)
    ncls = int(truth.max()) + 1
    if k >= ncls:
        pred = truth + ncls * rng.integers(0, max(1, k // ncls), size=truth.size)
        pred = np.minimum(pred, k - 1)
    else:
        pred = truth % k
    flip = rng.random(truth.size) < noise
    pred[flip] = rng.integers(0, k, size=int(flip.sum()))
    return pred


cases = []


def add(name, pred, truth):
    pred = np.asarray(pred, dtype=np.int64)
    truth = np.asarray(truth, dtype=np.int64)
    assert pred.shape == truth.shape
    n = pred.size
    case = {"name": name, "pred": pred.tolist(), "truth": truth.tolist()}
    # sklearn's argument order is (labels_true, labels_pred); the three are symmetric.
    case["nmi"] = float(normalized_mutual_info_score(truth, pred))
    case["ami"] = float(adjusted_mutual_info_score(truth, pred))
    case["ari"] = float(adjusted_rand_score(truth, pred))
    if n > 0:
        c = contingency_matrix(pred, truth)  # (clusters, classes)
        case["emi"] = float(expected_mutual_information(contingency_matrix(truth, pred, sparse=True), n))
        case["rowSums"] = c.sum(axis=1).tolist()  # cluster sizes
        case["colSums"] = c.sum(axis=0).tolist()  # class sizes
        r, q = linear_sum_assignment(c, maximize=True)
        case["correct"] = int(c[r, q].sum())  # Hungarian one-to-one
        case["purityCorrect"] = int(c.max(axis=1).sum())  # majority vote
        case["accuracy"] = case["correct"] / n
        case["purity"] = case["purityCorrect"] / n
    cases.append(case)


add("identical", [0, 0, 1, 1], [0, 0, 1, 1])
add("swapped ids", [1, 1, 0, 0], [0, 0, 1, 1])
add("independent 2x2", [0, 0, 1, 1], [0, 1, 0, 1])
add("split one class", [0, 0, 1, 2], [0, 0, 1, 1])
add("size 1", [3], [7])
add("size 2 one cluster", [0, 0], [0, 1])
add("size 3", [0, 1, 1], [2, 2, 0])
t = rng.integers(0, 5, size=50)
add("n50 k5 c5", noisy(t, 5, 0.3, rng), t)
t = rng.integers(0, 4, size=200)
add("n200 k7 > c4", noisy(t, 7, 0.25, rng), t)
t = rng.integers(0, 6, size=300)
add("n300 k3 < c6", noisy(t, 3, 0.2, rng), t)
t = rng.integers(0, 10, size=2000)
add("n2000 k30 > c10", noisy(t, 30, 0.4, rng), t)
add("n2000 random k10 c10", rng.integers(0, 10, size=2000), rng.integers(0, 10, size=2000))
t = rng.integers(0, 50, size=1000)
add("n1000 k50 c50", noisy(t, 50, 0.5, rng), t)
t = np.repeat(np.arange(5), 20)
add("one cluster", np.zeros(100, dtype=np.int64), t)
t = rng.integers(0, 10, size=500)
add("all singletons", np.arange(500), t)
add("both singletons", rng.permutation(300), np.arange(300))
t = rng.integers(0, 4, size=400)
gaps = np.array([3, 17, 1000, 99999, 2_000_000_000, 7])
add("labels with gaps", gaps[noisy(t, 6, 0.3, rng)], np.array([0, 5, 1 << 30, 12])[t])
# imbalanced classes: one huge, many tiny
t = np.minimum(rng.geometric(0.3, size=1500) - 1, 40)
add("n1500 imbalanced", noisy(t, 12, 0.2, rng), t)

# Linear sum assignment on real-valued costs (min and max), against scipy.
assignments = []
for (nr, nc, maximize) in [(6, 9, False), (9, 6, True), (40, 40, False), (25, 60, True)]:
    cost = np.round(rng.normal(size=(nr, nc)) * 10, 6)
    r, q = linear_sum_assignment(cost, maximize=maximize)
    assignments.append({"rows": nr, "cols": nc, "maximize": maximize, "cost": cost.ravel().tolist(),
                        "optimum": float(cost[r, q].sum())})

out = {
    "generator": "scripts/make-metrics-fixture.py",
    "versions": {"sklearn": sklearn.__version__, "scipy": scipy.__version__, "numpy": np.__version__},
    "cases": cases,
    "assignments": assignments,
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "metrics.json")
with open(path, "w") as f:
    json.dump(out, f, separators=(",", ":"))
    f.write("\n")
print(f"wrote {os.path.normpath(path)}: {os.path.getsize(path)} bytes, {len(cases)} cases", file=sys.stderr)
