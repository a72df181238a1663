// Developer timers: with SELFLABEL_PROFILE=1 in the environment, the wall time
// of each trunk layer's forward and backward (residual blocks by sublayer, plus
// their add and ReLU) is summed per (kind, phase) and printed to stderr when the
// process exits, leaving out the first training step (primitive creation).
// Off (one cached getenv per scope) otherwise. The CPU ops are
// synchronous, so wall time is the op's time there; on CUDA it is launch time.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace sln::prof {

inline bool enabled() {
  static const bool on = [] {
    const char* e = std::getenv("SELFLABEL_PROFILE");
    return e && *e && std::string(e) != "0";
  }();
  return on;
}

struct Table {
  std::mutex mu;
  std::map<std::string, std::pair<double, long>> t;   // key -> (seconds, calls)
  bool skipped_first = false;
  ~Table() {
    if (t.empty()) return;
    std::vector<std::pair<double, std::string>> rows;
    double total = 0;
    for (auto& [k, v] : t) {
      rows.push_back({v.first, k});
      if (k[0] != '=') total += v.first;   // "=..." rows span others (a whole step)
    }
    std::sort(rows.begin(), rows.end(), [](auto& a, auto& b) { return a.first > b.first; });
    std::fprintf(stderr, "# SELFLABEL_PROFILE: seconds per (op, phase), summed over all calls\n");
    for (auto& [s, k] : rows)
      std::fprintf(stderr, "%-34s %9.3f s %5.1f%% %7ld calls\n", k.c_str(), s, 100 * s / total, t[k].second);
    std::fprintf(stderr, "%-34s %9.3f s\n", "total timed", total);
  }
};

inline Table& table() {
  static Table tab;
  return tab;
}

class Scope {
 public:
  // on = false: time nothing (a residual block's sublayers are timed inside it)
  Scope(const char* kind, const char* phase, bool on = true) {
    if (!on || !enabled()) return;
    key_ = std::string(kind) + " " + phase;
    t0_ = std::chrono::steady_clock::now();
  }
  ~Scope() {
    if (key_.empty()) return;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    Table& tab = table();
    std::lock_guard<std::mutex> g(tab.mu);
    auto& e = tab.t[key_];
    e.first += s;
    e.second++;
    // the first training step creates the primitives and touches fresh memory: left out
    if (key_ == "=train step whole" && !tab.skipped_first) {
      tab.skipped_first = true;
      tab.t.clear();
    }
  }

 private:
  std::string key_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace sln::prof
