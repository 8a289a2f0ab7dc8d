// Adapters that let the reference read a fixture: its /weights group as a WeightSource and its
// /hooks (plus "/inputs/<name>") as HookInputs. Missing entries are parity::Error naming the key
// (a failure of the module that needed it); unreadable ones stay InputError (exit 2).
#pragma once

#include "fixture.h"
#include "models/model.h"
#include "weights.h"

namespace parity::harness {

// Float tensor -> Array / Weight; integer tensor -> IndexArray. Kind mismatches name `what`.
Array to_array(const Tensor& t, const std::string& what);
IndexArray to_index_array(const Tensor& t, const std::string& what);

class FixtureWeights final : public WeightSource {
 public:
  explicit FixtureWeights(const Fixture& fixture) : fixture_(fixture) {}
  bool has(const std::string& name) const override { return fixture_.has("weights", name); }
  Weight get(const std::string& name) const override;

 private:
  const Fixture& fixture_;
};

class FixtureHookInputs final : public HookInputs {
 public:
  explicit FixtureHookInputs(const Fixture& fixture) : fixture_(fixture) {}
  Array floats(const std::string& key) const override;
  IndexArray ints(const std::string& key) const override;

 private:
  Tensor read(const std::string& key) const;
  const Fixture& fixture_;
};

}  // namespace parity::harness
