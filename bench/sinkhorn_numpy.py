# The reference's optimize_L_sk (sinkhornknopp.py, CPU variant, dtype float64) as
# written, timed phase by phase. Called by bench/sinkhorn.ts with /usr/bin/python3:
#   sinkhorn_numpy.py LOGITS.f32 N K LAMBDA TOL MAXITERS LABELS_OUT.i32
# prints one JSON line (bench/torch_e2e.py imports optimize_L_sk). The softmax (done during aggregation in the reference) is
# computed in row chunks to keep the peak memory at one N x K float64 matrix.
import json
import sys
import time

import numpy as np


def optimize_L_sk(PS, lamb, tol, max_iters):
    """The reference's Sinkhorn-Knopp on PS (N x K softmax, float64; overwritten).

    Returns (labels, iterations, error, phase times: power_s, loop_s, median_iter_s, argmax_s)."""
    tt = time.time()
    PS = PS.T  # now it is K x N
    K, N = PS.shape
    r = np.ones((K, 1), dtype=np.float64) / K
    c = np.ones((N, 1), dtype=np.float64) / N
    PS **= lamb  # K x N
    t_power = time.time() - tt
    inv_K = 1. / K
    inv_N = 1. / N
    err = 1e6
    _counter = 0
    tl = time.time()
    times = []
    while err > tol and _counter < max_iters:
        ti = time.time()
        r = inv_K / (PS @ c)
        c_new = inv_N / (r.T @ PS).T
        if _counter % 10 == 0:
            err = np.nansum(np.abs(c / c_new - 1))
        c = c_new
        _counter += 1
        times.append(time.time() - ti)
    t_loop = time.time() - tl
    ta = time.time()
    PS *= np.squeeze(c)
    PS = PS.T
    PS *= np.squeeze(r)
    PS = PS.T
    argmaxes = np.nanargmax(PS, 0)
    t_argmax = time.time() - ta
    return argmaxes, _counter, float(err), {"power_s": t_power, "loop_s": t_loop,
                                            "median_iter_s": float(np.median(times)) if times else 0.0, "argmax_s": t_argmax}


def main():
    path, N, K, lamb, tol, max_iters, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
    z = np.memmap(path, dtype=np.float32, mode="r", shape=(N, K))
    t0 = time.time()
    PS = np.empty((N, K), dtype=np.float64)
    chunk = max(1, (64 << 20) // (8 * K))
    for i in range(0, N, chunk):
        rows = z[i:i + chunk].astype(np.float64)
        rows -= rows.max(1, keepdims=True)
        np.exp(rows, rows)
        rows /= rows.sum(1, keepdims=True)
        PS[i:i + chunk] = rows
    t_softmax = time.time() - t0
    tt = time.time()
    argmaxes, iterations, err, phases = optimize_L_sk(PS, lamb, tol, max_iters)
    argmaxes.astype(np.int32).tofile(out)
    print(json.dumps({"iterations": iterations, "error": err, "softmax_s": t_softmax, **phases, "solve_s": time.time() - tt}))


if __name__ == "__main__":
    main()
