// Evaluation on frozen features: weighted kNN classification and a linear probe.
//
// kNN (as the reference's / NPID's kNN monitor, without its last-batch bug):
//   bank (N, D) train features and queries (M, D) are L2-normalised (a zero vector
//   stays zero), similarities S = Q B^T are computed block by block (query blocks
//   of `query_block` rows times bank blocks of `bank_block` rows, the last block of
//   each short), and every query keeps its own top-k (k = max of the asked ks)
//   by (similarity desc, bank index asc). Each block writes only its own rows and
//   columns, so the result does not depend on the block sizes.
//   Vote for each asked k: class score = sum over the k nearest of exp(sim / T),
//   prediction = the class with the highest score (first on ties).
//
// Linear probe: features standardised with the train set's mean and standard
//   deviation (a constant group divides by 1), per dimension, or per channel when
//   `spatial` > 1 (D = channels x spatial, channel-major: the statistics of a
//   channel pool its `spatial` contiguous values, as BatchNorm2d(affine=False) in
//   eval mode before the reference's conv probes), multinomial logistic
//   regression W (C, D), b (C) from zero, mini-batch SGD with momentum and weight
//   decay (on W only) as torch.optim.SGD; learning rate: cosine decay to 0 over all
//   steps, or, when `milestones` is set, a step schedule lr * gamma^(number of
//   milestones <= epoch) per epoch (the reference's probes: 0.01, x0.1 at epochs
//   10, 20, 30 of 36); the order of each epoch given by the caller (seeded in
//   TypeScript). float64 and single-threaded: bit-identical for any thread count.
#pragma once
#include <cstdint>
#include <vector>

namespace sln::knn {

struct TopK {
  int64_t k = 0;             // neighbours kept per query (min(k, N))
  std::vector<int32_t> idx;  // (M, k) bank indices, best first
  std::vector<float> sim;    // (M, k) cosine similarities
};

// Top-k cosine neighbours of every query in the bank. Throws sln::Error on a
// non-finite feature or a bad size.
TopK topk(const float* bank, int64_t n, const float* queries, int64_t m, int64_t d, int64_t k,
          int64_t query_block, int64_t bank_block, int threads);

// Weighted votes from a top-k: preds (ks.size(), M), one row per k of ks (each <= t.k).
std::vector<int32_t> vote(const TopK& t, int64_t m, const int32_t* bank_labels, int64_t num_classes,
                          const std::vector<int64_t>& ks, double temperature);

struct ProbeOptions {
  int64_t epochs = 10;
  int64_t batch = 256;
  double lr = 0.1;
  double momentum = 0.9;
  double weight_decay = 1e-4;
  int64_t spatial = 1;                // values per standardisation group (D % spatial == 0)
  std::vector<int64_t> milestones;    // epochs; empty = cosine decay
  double gamma = 0.1;
};

struct ProbeResult {
  std::vector<int32_t> train_pred;  // (N) predictions on the (standardised) train features
  std::vector<int32_t> test_pred;   // (M)
  std::vector<double> epoch_loss;   // mean cross-entropy of each epoch
};

// order: (epochs, N) permutations of 0..N-1, one per epoch.
ProbeResult linear_probe(const float* x, const int32_t* y, int64_t n, const float* xt, int64_t m, int64_t d,
                         int64_t num_classes, const int32_t* order, const ProbeOptions& o);

}  // namespace sln::knn
