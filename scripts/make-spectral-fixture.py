#!/usr/bin/python3
"""Write test/fixtures/spectral.json: small data sets with the float64 reference
of every stage of spectral() (test/spectral.test.ts):

- the kNN graph by brute force (cosine similarity, each row's `neighbors`
  nearest other rows, union), its edge count;
- the top-k eigenvalues of D^-1/2 A D^-1/2 by numpy.linalg.eigh (dense, float64);
- the NMI of scikit-learn's SpectralClustering-style pipeline (row-normalised
  top-k eigenvectors, KMeans n_init=10) and of plain k-means on the rows,
  against the generating classes.

Run with Debian's python (python3-sklearn):
    /usr/bin/python3 scripts/make-spectral-fixture.py
Deterministic (seeded numpy Generator); the data are stored as float32 values.
"""
import json
import os

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score as nmi

rng = np.random.default_rng(20261205)


def moons(n, noise, rng):
    """Two interleaved half circles (k-means cannot split them), lifted to 3-D with a constant
    offset so cosine similarity is local (nearby points have similar directions)."""
    y = rng.integers(0, 2, size=n)
    t = rng.uniform(0, np.pi, size=n)
    x = np.where(y == 0, np.cos(t), 1 - np.cos(t))
    z = np.where(y == 0, np.sin(t), 0.5 - np.sin(t))
    p = np.stack([x, z], 1) + rng.normal(0, noise, size=(n, 2))
    return np.concatenate([p, np.full((n, 1), 6.0)], 1), y


def rings(n, rng):
    """Three concentric rings in a plane, lifted the same way, plus two noise dimensions."""
    y = rng.integers(0, 3, size=n)
    t = rng.uniform(0, 2 * np.pi, size=n)
    r = (1.0 + y) + rng.normal(0, 0.08, size=n)
    p = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    return np.concatenate([p, np.full((n, 1), 4.0), rng.normal(0, 0.05, size=(n, 2))], 1), y


def reference(x, k, neighbors):
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = xn @ xn.T
    np.fill_diagonal(s, -np.inf)
    n = len(x)
    a = np.zeros((n, n))
    for i in range(n):
        nb = np.argsort(-s[i], kind="stable")[:neighbors]
        a[i, nb] = 1
    a = np.maximum(a, a.T)
    deg = a.sum(1)
    m = a / np.sqrt(deg[:, None] * deg[None, :])
    w, v = np.linalg.eigh(m)
    order = np.argsort(-w)[:k]
    u = v[:, order]
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    lab = KMeans(k, n_init=10, random_state=0).fit_predict(u)
    return int(a.sum() // 2), w[order].tolist(), lab


cases = []
for name, (x, y), k, nb in [
    ("two moons", moons(400, 0.06, rng), 2, 10),
    ("three rings", rings(600, rng), 3, 10),
]:
    x = x.astype(np.float32)
    edges, eig, lab = reference(x.astype(np.float64), k, nb)
    km = KMeans(k, n_init=10, random_state=0).fit_predict(x)
    cases.append({
        "name": name, "n": len(x), "d": x.shape[1], "k": k, "neighbors": nb,
        "data": [float(v) for v in x.ravel()], "truth": [int(v) for v in y],
        "edges": edges, "eigenvalues": eig,
        "sklearnSpectralNmi": round(float(nmi(y, lab)), 3), "sklearnKmeansNmi": round(float(nmi(y, km)), 3),
    })
    print(name, "edges", edges, "eig", np.round(eig, 4), "spectral NMI", cases[-1]["sklearnSpectralNmi"], "kmeans NMI", cases[-1]["sklearnKmeansNmi"])

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "spectral.json")
with open(out, "w") as f:
    json.dump({"generator": "scripts/make-spectral-fixture.py", "cases": cases}, f)
    f.write("\n")
