#include "logprobs/quantiles.h"

#include <algorithm>
#include <cmath>
#include <random>

#include <doctest/doctest.h>

namespace parity::harness {

namespace {

// numpy.percentile ("linear") by sorting: what the histogram path must reproduce exactly.
double sorted_percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q / 100.0 * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  const double t = pos - static_cast<double>(lo), a = v[lo], b = v[std::min(lo + 1, v.size() - 1)];
  return t == 0 ? a : t < 0.5 ? a + (b - a) * t : b - (b - a) * (1 - t);
}

std::vector<double> by_histogram(const std::vector<double>& values, const std::vector<double>& qs) {
  RankHistogram h;
  for (double x : values) h.add(x);
  return linear_percentiles(h, qs, [&](const std::vector<uint8_t>& wanted) {
    std::map<uint32_t, std::vector<double>> bins;
    for (double x : values)
      if (wanted[RankHistogram::bin_of(x)]) bins[RankHistogram::bin_of(x)].push_back(x);
    return bins;
  });
}

}  // namespace

TEST_CASE("quantiles: the histogram path equals sorting, with ties, zeros and values spanning decades") {
  std::mt19937 rng(3);
  std::lognormal_distribution<double> spread(-4, 3);
  std::vector<double> values;
  for (int i = 0; i < 20000; ++i) values.push_back(i % 7 == 0 ? 0.0 : i % 11 == 0 ? 0.25 : spread(rng));
  const std::vector<double> qs = {0, 1, 50, 90, 99, 99.99, 100};
  const std::vector<double> got = by_histogram(values, qs);
  for (size_t i = 0; i < qs.size(); ++i) {
    CAPTURE(qs[i]);
    CHECK(got[i] == sorted_percentile(values, qs[i]));
  }
  CHECK(by_histogram({2.0}, {50, 99}) == std::vector<double>{2.0, 2.0});
  CHECK(by_histogram({1.0, 3.0}, {50}) == std::vector<double>{2.0});
}

TEST_CASE("quantiles: the bin key keeps the order of non-negative doubles") {
  CHECK(RankHistogram::bin_of(0.0) < RankHistogram::bin_of(1e-300));
  CHECK(RankHistogram::bin_of(1.0) < RankHistogram::bin_of(1.1));
  CHECK(RankHistogram::bin_of(1.0) == RankHistogram::bin_of(1.01));  // same top 4 mantissa bits
  CHECK(RankHistogram::bin_of(1e300) < RankHistogram::bin_of(std::numeric_limits<double>::infinity()));
}

}  // namespace parity::harness
