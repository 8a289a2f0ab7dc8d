#include "run/noise_floor.h"

#include "io/fixture_sources.h"

namespace parity::harness {

const Array* FloorCapture::find(const std::string& key) const {
  auto it = values_.find(key);
  return it == values_.end() ? nullptr : &it->second;
}

FloorTie FloorCapture::tie_for(const std::string& router, double factor) const {
  auto it = scores_.find(router);
  return it == scores_.end() ? FloorTie{} : FloorTie{&it->second, factor};
}

std::optional<IndexArray> dump_top_k_index(const Fixture& dump, const std::string& router, const Shape& shape) {
  const std::string key = router + "@top_k_index";
  if (!dump.has("hooks", key)) return std::nullopt;
  IndexArray index = to_index_array(dump.read("hooks", key), key);
  if (index.shape != shape) return std::nullopt;
  return index;
}

std::unique_ptr<ReferenceModel> floor_model_of(const Fixture& fixture, const WeightSource& weights,
                                               const Variants& variants) {
  const std::optional<Precision> run = precision_for_run_dtype(fixture.meta_string("dtype"));
  if (!run) return nullptr;
  // bf16: the one-ulp roundings too (numerics.h Rounding); float sums alone rarely flip a bf16 rounding.
  const Rounding rounding = *run == Precision::BF16 ? Rounding::kFlipNearMidpoints : Rounding::kNearest;
  return make_reference_model(fixture.config(), weights, Numerics(*run, Accumulation::kFloat, rounding),
                              /*keep_weights=*/false, variants);
}

}  // namespace parity::harness
