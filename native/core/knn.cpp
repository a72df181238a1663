// kNN on cosine similarity and the linear probe (see knn.h).
//
// Similarities: our own blocked kernel (compiled for AVX2 and the baseline ISA,
// picked at load time, no FMA so both clones round alike). Every S[q][j] is
// summed over d = 0..D-1 in order, one float multiply and one float add per
// term, whatever the tile or block it falls in: the result is bit-identical for
// any block sizes and thread counts, and a plain single-loop computation (the
// test's brute force) reproduces it exactly. The top-k update is a per-query
// min-heap with an early reject against its worst kept similarity, run in
// parallel over the queries of a block.
// Speed (npm run bench -- knn): the tile kernel reaches ~13-15 GFLOP/s per core
// (AVX2 clone, single-thread microbenchmark); oneDNN's sgemm reached ~65 with
// AVX-512 + FMA but its rounding depends on the block shape (151 of 200000
// top-k entries differed between two blockings), which we do not accept.
// 60000 x 10000 x 128 with top-200: 27 s measured on the 2-core dev machine at
// load average 7.3 (others' jobs); about 3 s expected with both cores free.
#include "core/knn.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "sln/errors.h"

namespace sln::knn {

namespace {

// L2-normalised copy of (rows, d); a zero row stays zero.
std::vector<float> normalised(const float* x, int64_t rows, int64_t d, const char* what, int threads) {
  std::vector<float> out(static_cast<size_t>(rows * d));
  int64_t bad = -1;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < rows; ++i) {
    const float* r = x + i * d;
    double s = 0;
    bool finite = true;
    for (int64_t j = 0; j < d; ++j) {
      finite = finite && std::isfinite(r[j]);
      s += static_cast<double>(r[j]) * r[j];
    }
    if (!finite) {
#pragma omp critical
      if (bad < 0 || i < bad) bad = i;
    }
    const double inv = s > 0 ? 1.0 / std::sqrt(s) : 0.0;
    for (int64_t j = 0; j < d; ++j) out[i * d + j] = static_cast<float>(r[j] * inv);
  }
  if (bad >= 0) SLN_FAIL(Range, "SLN_NONFINITE", "knn: " << what << " row " << bad << " holds NaN or Inf");
  return out;
}

// (sim, idx) a is worse than b: lower similarity, or equal and a later index.
inline bool worse(float sa, int32_t ia, float sb, int32_t ib) { return sa < sb || (sa == sb && ia > ib); }

// Min-heap (worst at the root) of size `size` in hs/hi.
void sift_down(float* hs, int32_t* hi, int64_t size, int64_t p) {
  for (;;) {
    int64_t l = 2 * p + 1, r = l + 1, w = p;
    if (l < size && worse(hs[l], hi[l], hs[w], hi[w])) w = l;
    if (r < size && worse(hs[r], hi[r], hs[w], hi[w])) w = r;
    if (w == p) return;
    std::swap(hs[p], hs[w]);
    std::swap(hi[p], hi[w]);
    p = w;
  }
}
void sift_up(float* hs, int32_t* hi, int64_t p) {
  while (p > 0) {
    int64_t q = (p - 1) / 2;
    if (!worse(hs[p], hi[p], hs[q], hi[q])) return;
    std::swap(hs[p], hs[q]);
    std::swap(hi[p], hi[q]);
    p = q;
  }
}


// S (mq, nb) = Q (mqp, D; rows padded to a multiple of 4 with zeros) times BT (D, nbp;
// columns padded to a multiple of 16 with zeros). Tiles of 4 queries x 16 bank rows,
// held in eight 8-float vectors (GCC vector extensions: one AVX2 register each, two
// SSE registers in the baseline clone).
typedef float v8f __attribute__((vector_size(32)));
static inline v8f load8(const float* p) {
  v8f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
__attribute__((target_clones("avx2", "default"))) void sim_block(const float* Q, int64_t mq, const float* BT,
                                                                 int64_t nb, int64_t nbp, int64_t d, float* S) {
  for (int64_t j0 = 0; j0 < nb; j0 += 16) {
    v8f a00 = {}, a01 = {}, a10 = {}, a11 = {}, a20 = {}, a21 = {}, a30 = {}, a31 = {};
    const float* q0 = Q;
    const float* q1 = Q + d;
    const float* q2 = Q + 2 * d;
    const float* q3 = Q + 3 * d;
    for (int64_t k = 0; k < d; ++k) {
      const v8f b0 = load8(BT + k * nbp + j0), b1 = load8(BT + k * nbp + j0 + 8);
      const float x0 = q0[k], x1 = q1[k], x2 = q2[k], x3 = q3[k];
      a00 += x0 * b0;
      a01 += x0 * b1;
      a10 += x1 * b0;
      a11 += x1 * b1;
      a20 += x2 * b0;
      a21 += x2 * b1;
      a30 += x3 * b0;
      a31 += x3 * b1;
    }
    float out[4][16];
    std::memcpy(out[0], &a00, 32);
    std::memcpy(out[0] + 8, &a01, 32);
    std::memcpy(out[1], &a10, 32);
    std::memcpy(out[1] + 8, &a11, 32);
    std::memcpy(out[2], &a20, 32);
    std::memcpy(out[2] + 8, &a21, 32);
    std::memcpy(out[3], &a30, 32);
    std::memcpy(out[3] + 8, &a31, 32);
    for (int r = 0; r < 4 && r < mq; ++r)
      for (int c = 0; c < 16 && j0 + c < nb; ++c) S[r * nb + j0 + c] = out[r][c];
  }
}

}  // namespace

TopK topk(const float* bank, int64_t n, const float* queries, int64_t m, int64_t d, int64_t k, int64_t query_block,
          int64_t bank_block, int threads) {
  SLN_CHECK_ARG(n >= 1 && m >= 0 && d >= 1, "knn: need N >= 1 bank rows and D >= 1, got N=" << n << " M=" << m << " D=" << d);
  SLN_CHECK_ARG(k >= 1, "knn: k must be >= 1, got " << k);
  SLN_CHECK_ARG(query_block >= 1 && bank_block >= 1,
                "knn: block sizes must be >= 1, got " << query_block << " x " << bank_block);
  if (threads < 1) threads = 1;
  TopK t;
  t.k = std::min(k, n);
  const int64_t K = t.k;
  t.idx.assign(static_cast<size_t>(m * K), -1);
  t.sim.assign(static_cast<size_t>(m * K), 0.f);
  if (m == 0) return t;
  const std::vector<float> B = normalised(bank, n, d, "bank", threads);    // (N, D)
  const std::vector<float> Q = normalised(queries, m, d, "query", threads);  // (M, D)
  const int64_t qb = std::min(query_block, m), bb = std::min(bank_block, n);
  const int64_t qbp = (qb + 3) / 4 * 4, bbp = (bb + 15) / 16 * 16;
  std::vector<float> S(static_cast<size_t>(qb * bb));     // (qb, bb) one block of similarities
  std::vector<float> BT(static_cast<size_t>(d * bbp));    // (D, bbp) the bank block, transposed
  std::vector<float> Qp(static_cast<size_t>(qbp * d));    // (qbp, D) the query block, zero-padded
  std::vector<int64_t> fill(static_cast<size_t>(m), 0);
  for (int64_t q0 = 0; q0 < m; q0 += qb) {
    const int64_t mq = std::min(qb, m - q0);  // the last query block may be short
    const int64_t mqp = (mq + 3) / 4 * 4;
    std::fill(Qp.begin(), Qp.end(), 0.f);
    std::copy(Q.begin() + q0 * d, Q.begin() + (q0 + mq) * d, Qp.begin());
    for (int64_t b0 = 0; b0 < n; b0 += bb) {
      const int64_t nb = std::min(bb, n - b0);  // the last bank block may be short
      const int64_t nbp = (nb + 15) / 16 * 16;
      for (int64_t k = 0; k < d; ++k) {
        float* row = BT.data() + k * nbp;
        for (int64_t j = 0; j < nb; ++j) row[j] = B[(b0 + j) * d + k];
        for (int64_t j = nb; j < nbp; ++j) row[j] = 0.f;
      }
      // S[0:mq, 0:nb] = Q[q0:q0+mq] . B[b0:b0+nb]^T, 4-query tiles split over the threads
      const int64_t tiles = mqp / 4;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
      for (int64_t t4 = 0; t4 < tiles; ++t4) {
        const int64_t r0 = t4 * 4;
        sim_block(Qp.data() + r0 * d, std::min<int64_t>(4, mq - r0), BT.data(), nb, nbp, d, S.data() + r0 * nb);
      }
#pragma omp parallel for num_threads(threads) schedule(static)
      for (int64_t i = 0; i < mq; ++i) {
        const int64_t qi = q0 + i;
        float* hs = t.sim.data() + qi * K;
        int32_t* hi = t.idx.data() + qi * K;
        int64_t f = fill[qi];
        const float* row = S.data() + i * nb;
        for (int64_t j = 0; j < nb; ++j) {
          const float s = row[j];
          const int32_t id = static_cast<int32_t>(b0 + j);
          if (f < K) {
            hs[f] = s;
            hi[f] = id;
            sift_up(hs, hi, f);
            ++f;
          } else if (worse(hs[0], hi[0], s, id)) {  // indices ascend, so equal similarity never replaces
            hs[0] = s;
            hi[0] = id;
            sift_down(hs, hi, K, 0);
          }
        }
        fill[qi] = f;
      }
    }
  }
  // best first
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t qi = 0; qi < m; ++qi) {
    float* hs = t.sim.data() + qi * K;
    int32_t* hi = t.idx.data() + qi * K;
    std::vector<int64_t> p(static_cast<size_t>(K));
    std::iota(p.begin(), p.end(), 0);
    std::sort(p.begin(), p.end(), [&](int64_t a, int64_t b) { return worse(hs[b], hi[b], hs[a], hi[a]); });
    std::vector<float> s2(static_cast<size_t>(K));
    std::vector<int32_t> i2(static_cast<size_t>(K));
    for (int64_t j = 0; j < K; ++j) {
      s2[j] = hs[p[j]];
      i2[j] = hi[p[j]];
    }
    std::copy(s2.begin(), s2.end(), hs);
    std::copy(i2.begin(), i2.end(), hi);
  }
  return t;
}

std::vector<int32_t> vote(const TopK& t, int64_t m, const int32_t* bank_labels, int64_t num_classes,
                          const std::vector<int64_t>& ks, double temperature) {
  SLN_CHECK_ARG(num_classes >= 1, "knn vote: num_classes must be >= 1");
  SLN_CHECK_ARG(temperature > 0, "knn vote: temperature must be > 0, got " << temperature);
  for (int64_t k : ks) SLN_CHECK_ARG(k >= 1 && k <= t.k, "knn vote: k=" << k << " outside [1, " << t.k << "]");
  std::vector<int32_t> out(ks.size() * static_cast<size_t>(m));
  std::vector<double> score(static_cast<size_t>(num_classes));
  for (size_t a = 0; a < ks.size(); ++a) {
    for (int64_t q = 0; q < m; ++q) {
      std::fill(score.begin(), score.end(), 0.0);
      for (int64_t j = 0; j < ks[a]; ++j) {
        const int32_t c = bank_labels[t.idx[q * t.k + j]];
        if (c < 0 || c >= num_classes)
          SLN_FAIL(Range, "SLN_RANGE", "knn vote: bank label " << c << " outside [0, " << num_classes << ")");
        score[c] += std::exp(static_cast<double>(t.sim[q * t.k + j]) / temperature);
      }
      int64_t best = 0;
      for (int64_t c = 1; c < num_classes; ++c)
        if (score[c] > score[best]) best = c;
      out[a * m + q] = static_cast<int32_t>(best);
    }
  }
  return out;
}

ProbeResult linear_probe(const float* x, const int32_t* y, int64_t n, const float* xt, int64_t m, int64_t d,
                         int64_t C, const int32_t* order, const ProbeOptions& o) {
  SLN_CHECK_ARG(n >= 1 && d >= 1 && C >= 2, "linear probe: need N >= 1, D >= 1, C >= 2, got " << n << ", " << d << ", " << C);
  SLN_CHECK_ARG(o.epochs >= 1 && o.batch >= 1 && o.lr > 0 && o.momentum >= 0 && o.weight_decay >= 0,
                "linear probe: bad options (epochs " << o.epochs << ", batch " << o.batch << ", lr " << o.lr << ")");
  for (int64_t i = 0; i < n; ++i)
    if (y[i] < 0 || y[i] >= C) SLN_FAIL(Range, "SLN_RANGE", "linear probe: label " << y[i] << " at " << i << " outside [0, " << C << ")");
  for (int64_t e = 0; e < o.epochs; ++e) {
    std::vector<char> seen(static_cast<size_t>(n), 0);
    for (int64_t i = 0; i < n; ++i) {
      const int32_t v = order[e * n + i];
      if (v < 0 || v >= n || seen[v]) SLN_FAIL(Range, "SLN_RANGE", "linear probe: order of epoch " << e << " is not a permutation of 0.." << n - 1);
      seen[v] = 1;
    }
  }
  SLN_CHECK_ARG(o.spatial >= 1 && d % o.spatial == 0,
                "linear probe: spatial " << o.spatial << " must divide D = " << d);
  for (int64_t q : o.milestones) SLN_CHECK_ARG(q >= 1, "linear probe: milestones must be epochs >= 1, got " << q);
  // standardisation from the train features: group g = j / spatial
  const int64_t groups = d / o.spatial;
  std::vector<double> gmean(groups, 0.0), gvar(groups, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) {
      if (!std::isfinite(x[i * d + j])) SLN_FAIL(Range, "SLN_NONFINITE", "linear probe: train feature row " << i << " holds NaN or Inf");
      gmean[j / o.spatial] += x[i * d + j];
    }
  const double per_group = static_cast<double>(n) * static_cast<double>(o.spatial);
  for (int64_t g = 0; g < groups; ++g) gmean[g] /= per_group;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) {
      const double v = x[i * d + j] - gmean[j / o.spatial];
      gvar[j / o.spatial] += v * v;
    }
  std::vector<double> mean(d), inv_std(d);
  for (int64_t j = 0; j < d; ++j) {
    const int64_t g = j / o.spatial;
    const double sd = std::sqrt(gvar[g] / per_group);
    mean[j] = gmean[g];
    inv_std[j] = sd > 1e-12 ? 1.0 / sd : 1.0;
  }
  auto standard = [&](const float* src, int64_t i, double* dst) {
    for (int64_t j = 0; j < d; ++j) dst[j] = (src[i * d + j] - mean[j]) * inv_std[j];
  };
  std::vector<double> W(C * d, 0.0), b(C, 0.0);    // (C, D), (C)
  std::vector<double> vW(C * d, 0.0), vb(C, 0.0);  // momentum buffers
  std::vector<double> gW(C * d), gb(C);
  std::vector<double> xs(d), p(C);
  const int64_t steps_per_epoch = (n + o.batch - 1) / o.batch;
  const double total = static_cast<double>(o.epochs * steps_per_epoch);
  auto logits = [&](const double* v, double* out) {
    for (int64_t c = 0; c < C; ++c) {
      double s = b[c];
      const double* w = W.data() + c * d;
      for (int64_t j = 0; j < d; ++j) s += w[j] * v[j];
      out[c] = s;
    }
  };
  ProbeResult r;
  int64_t step = 0;
  for (int64_t e = 0; e < o.epochs; ++e) {
    double loss = 0;
    for (int64_t s0 = 0; s0 < n; s0 += o.batch, ++step) {
      const int64_t bs = std::min(o.batch, n - s0);
      std::fill(gW.begin(), gW.end(), 0.0);
      std::fill(gb.begin(), gb.end(), 0.0);
      for (int64_t t = 0; t < bs; ++t) {
        const int64_t i = order[e * n + s0 + t];
        standard(x, i, xs.data());
        logits(xs.data(), p.data());
        double mx = p[0];
        for (int64_t c = 1; c < C; ++c) mx = std::max(mx, p[c]);
        double z = 0;
        for (int64_t c = 0; c < C; ++c) z += (p[c] = std::exp(p[c] - mx));
        loss += std::log(z) - (std::log(p[y[i]]));  // -log softmax[y]
        for (int64_t c = 0; c < C; ++c) {
          const double g = p[c] / z - (c == y[i] ? 1.0 : 0.0);  // d(CE)/d(logit c)
          gb[c] += g;
          double* gw = gW.data() + c * d;
          for (int64_t j = 0; j < d; ++j) gw[j] += g * xs[j];
        }
      }
      double lr = 0.5 * o.lr * (1.0 + std::cos(M_PI * static_cast<double>(step) / total));
      if (!o.milestones.empty()) {
        lr = o.lr;
        for (int64_t q : o.milestones)
          if (e >= q) lr *= o.gamma;
      }
      const double inv_bs = 1.0 / static_cast<double>(bs);
      // torch.optim.SGD: g += wd * w; v = mu * v + g; w -= lr * v (no decay on the bias)
      for (int64_t q = 0; q < C * d; ++q) {
        const double g = gW[q] * inv_bs + o.weight_decay * W[q];
        vW[q] = o.momentum * vW[q] + g;
        W[q] -= lr * vW[q];
      }
      for (int64_t c = 0; c < C; ++c) {
        vb[c] = o.momentum * vb[c] + gb[c] * inv_bs;
        b[c] -= lr * vb[c];
      }
    }
    r.epoch_loss.push_back(loss / static_cast<double>(n));
  }
  auto predict = [&](const float* src, int64_t rows, std::vector<int32_t>& out) {
    out.assign(static_cast<size_t>(rows), 0);
    for (int64_t i = 0; i < rows; ++i) {
      standard(src, i, xs.data());
      logits(xs.data(), p.data());
      int64_t best = 0;
      for (int64_t c = 1; c < C; ++c)
        if (p[c] > p[best]) best = c;
      out[i] = static_cast<int32_t>(best);
    }
  };
  predict(x, n, r.train_pred);
  for (int64_t i = 0; i < m * d; ++i)
    if (!std::isfinite(xt[i])) SLN_FAIL(Range, "SLN_NONFINITE", "linear probe: test feature row " << i / d << " holds NaN or Inf");
  predict(xt, m, r.test_pred);
  return r;
}

}  // namespace sln::knn
