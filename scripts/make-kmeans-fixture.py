#!/usr/bin/python3
"""Write test/fixtures/kmeans.json: data sets with scikit-learn's k-means result
(inertia of the best of n_init=10 k-means++ runs, its NMI against the generating
classes), the reference values for test/kmeans.test.ts.

Run with Debian's python (python3-sklearn):
    /usr/bin/python3 scripts/make-kmeans-fixture.py
Deterministic (seeded numpy Generator); values are rounded to 3 decimals and
scikit-learn runs on exactly the float32 values the test passes to kmeans().
"""
import json
import os

import numpy as np
import sklearn
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

rng = np.random.default_rng(20261205)


def blobs(n, d, k, spread, rng):
    centres = rng.normal(0, 1, size=(k, d))
    y = rng.integers(0, k, size=n)
    scale = rng.uniform(0.5, 1.5, size=(k, d)) * spread  # anisotropic, unequal clusters
    x = centres[y] + rng.normal(0, 1, size=(n, d)) * scale[y]
    return x, y


cases = []
for name, n, d, k, spread in [("separated", 200, 8, 4, 0.15), ("overlapping", 300, 16, 6, 0.9), ("many", 400, 20, 12, 0.8)]:
    x, y = blobs(n, d, k, spread, rng)
    x = np.round(x, 3).astype(np.float32)
    km = KMeans(n_clusters=k, n_init=10, init="k-means++", tol=1e-4, max_iter=300, random_state=0, algorithm="lloyd").fit(x)
    cases.append(
        {
            "name": name,
            "n": n,
            "d": d,
            "k": k,
            "data": [round(float(v), 3) for v in x.reshape(-1)],  # float32(this) == x
            "truth": [int(v) for v in y],
            "sklearnInertia": float(km.inertia_),
            "sklearnNmi": float(normalized_mutual_info_score(y, km.labels_)),
        }
    )

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "kmeans.json")
with open(out, "w") as f:
    json.dump({"generator": "scripts/make-kmeans-fixture.py", "sklearn": sklearn.__version__, "cases": cases}, f, separators=(",", ":"))
print(out, os.path.getsize(out), "bytes")
for c in cases:
    print(c["name"], c["sklearnInertia"], c["sklearnNmi"])
