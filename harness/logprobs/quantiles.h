// Exact percentiles of millions of non-negative values without storing or sorting them: the
// metrics' pass counts values per bin of their top 16 bits (sign, exponent, 4 mantissa bits: an
// order-preserving key for x >= 0), `locate` finds the bins holding the wanted ranks, and a second
// pass collects only those bins' values, where nth_element finishes the job.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <vector>

namespace parity::harness {

class RankHistogram {
 public:
  static constexpr int kBins = 1 << 16;
  static uint32_t bin_of(double x);  // x >= 0

  RankHistogram() : counts_(kBins, 0) {}
  void add(double x) { ++counts_[bin_of(x)]; }
  void merge(const RankHistogram& other);
  int64_t count() const;

  // For each 0-based rank (< count()): its bin, and its rank among that bin's values.
  struct Place {
    uint32_t bin = 0;
    int64_t rank_in_bin = 0;
  };
  std::vector<Place> locate(const std::vector<int64_t>& ranks) const;

 private:
  std::vector<int64_t> counts_;
};

// Fills `values` with every value whose bin is marked in `wanted` (kBins flags), any order.
using CollectBins = std::function<std::map<uint32_t, std::vector<double>>(const std::vector<uint8_t>& wanted)>;

// numpy.percentile's default ("linear"): the value at rank (n − 1)·q/100, interpolated between its
// two neighbouring ranks with numpy's _lerp, for each q.
std::vector<double> linear_percentiles(const RankHistogram& histogram, const std::vector<double>& qs,
                                       const CollectBins& collect);

}  // namespace parity::harness
