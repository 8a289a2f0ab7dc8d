#include "logprobs/quantiles.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace parity::harness {

uint32_t RankHistogram::bin_of(double x) {
  uint64_t bits = 0;
  std::memcpy(&bits, &x, sizeof bits);
  return static_cast<uint32_t>(bits >> 48);
}

void RankHistogram::merge(const RankHistogram& other) {
  for (size_t b = 0; b < counts_.size(); ++b) counts_[b] += other.counts_[b];
}

int64_t RankHistogram::count() const {
  int64_t n = 0;
  for (int64_t c : counts_) n += c;
  return n;
}

std::vector<RankHistogram::Place> RankHistogram::locate(const std::vector<int64_t>& ranks) const {
  std::vector<Place> places;
  for (int64_t rank : ranks) {
    int64_t before = 0;
    uint32_t b = 0;
    while (before + counts_[b] <= rank) before += counts_[b++];
    places.push_back({b, rank - before});
  }
  return places;
}

std::vector<double> linear_percentiles(const RankHistogram& histogram, const std::vector<double>& qs,
                                       const CollectBins& collect) {
  const int64_t n = histogram.count();
  std::vector<int64_t> ranks;
  std::vector<double> fractions;
  for (double q : qs) {
    const double pos = q / 100.0 * static_cast<double>(n - 1);
    const auto lo = static_cast<int64_t>(std::floor(pos));
    ranks.push_back(lo);
    ranks.push_back(std::min(lo + 1, n - 1));
    fractions.push_back(pos - static_cast<double>(lo));
  }
  const std::vector<RankHistogram::Place> places = histogram.locate(ranks);
  std::vector<uint8_t> wanted(RankHistogram::kBins, 0);
  for (const RankHistogram::Place& p : places) wanted[p.bin] = 1;
  std::map<uint32_t, std::vector<double>> bins = collect(wanted);
  auto value = [&](const RankHistogram::Place& p) {
    std::vector<double>& v = bins.at(p.bin);
    std::nth_element(v.begin(), v.begin() + p.rank_in_bin, v.end());
    return v[static_cast<size_t>(p.rank_in_bin)];
  };
  std::vector<double> out;
  for (size_t i = 0; i < qs.size(); ++i) {
    const double a = value(places[2 * i]), t = fractions[i];
    if (t == 0) {
      out.push_back(a);
      continue;
    }
    const double b = value(places[2 * i + 1]);
    out.push_back(t < 0.5 ? a + (b - a) * t : b - (b - a) * (1 - t));  // numpy's _lerp, stable at both ends
  }
  return out;
}

}  // namespace parity::harness
