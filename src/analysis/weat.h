// Word Embedding Association Test (Caliskan, Bryson & Narayanan 2017, Science
// 356:183) on plain vectors. For targets X, Y and attributes A, B:
//   s(w, A, B) = mean_a cos(w, a) - mean_b cos(w, b)
//   S(X, Y)    = sum_x s(x) - sum_y s(y)
//   d          = (mean_x s(x) - mean_y s(y)) / std_{w in X u Y} s(w)   (sample std, n - 1)
// p-values over the re-partitions of X u Y into sets of sizes |X| and |Y|:
// one-sided Pr[S_i >= S] as in the paper, and two-sided
// Pr[|S_i - E S_i| >= |S - E S_i|]; exact (every partition, the observed one
// included) when there are at most `exact_limit` partitions, otherwise from
// `permutations` random partitions as (1 + #) / (1 + B).
#pragma once

#include <cstdint>
#include <vector>

namespace tinyemo::analysis {

using Vectors = std::vector<std::vector<float>>;

struct WeatOptions {
  int64_t permutations = 10000;
  int64_t exact_limit = 1000000;
  uint64_t seed = 0;
  uint64_t stream = 0;  // distinct random streams for distinct tests of one run
};

struct WeatResult {
  std::vector<double> s_x, s_y;  // per-term associations s(w, A, B)
  double statistic = 0.0;        // S(X, Y)
  double effect_size = 0.0;      // d; NaN when every s(w) is equal
  double p_one_sided = 1.0;
  double p_two_sided = 1.0;
  bool exact = false;
  int64_t partitions = 0;        // enumerated (exact) or sampled
};

double cosine(const std::vector<float>& a, const std::vector<float>& b);

// s(w, A, B) for one vector.
double association(const std::vector<float>& w, const Vectors& a, const Vectors& b);

// Throws tinyemo::Error when a set is empty or vector sizes differ.
WeatResult weat(const Vectors& x, const Vectors& y, const Vectors& a, const Vectors& b, const WeatOptions& options);

// The same test from associations already computed (s_x: s(x, A, B) for each
// x in X, s_y for Y): for callers that hold the cosines and need not copy the
// attribute vectors (associations.cpp runs one test per emotion label).
WeatResult weat_from_associations(std::vector<double> s_x, std::vector<double> s_y, const WeatOptions& options);

}  // namespace tinyemo::analysis
