// Fuzz target: the HDF5 fixture reader and what reads a fixture before the gate does. The bytes are
// a fixture file: opened (the crash probe, the skeleton, /meta, the config), every dataset of every
// group described and read, the forward inputs validated, the reference model built from the
// config over the fixture's weights, and every module replayed from the fixture's own hook tensors
// and the whole model run forward, both into a sink that drops what it gets. A weight or hook of
// the wrong shape for the config must be refused, never read out of bounds.
#include <cstdint>

#include "fuzz/fuzz_input.h"
#include "io/fixture.h"
#include "io/fixture_sources.h"
#include "models/model.h"

namespace {

using namespace parity;
using namespace parity::harness;

class DropSink final : public HookSink {
 public:
  void emit(const std::string&, const Array&) override {}
  void emit_top_k(const std::string&, const TopK&) override {}
};

// A dataset larger than this is described but not read: the fuzzer looks for wrong reads, not for
// the time a big allocation takes (the size checks against the file are in the reader).
constexpr int64_t kMaxReadValues = int64_t{1} << 22;

void read_every_dataset(const Fixture& fixture) {
  for (const std::string_view group : Fixture::kGroups) {
    if (group == "meta") continue;
    for (const std::string& name : fixture.names(group)) {
      const DatasetInfo info = fixture.info(group, name);
      if (parity::numel(info.shape) <= kMaxReadValues) (void)fixture.read(group, name);
    }
  }
}

void run_reference(const Fixture& fixture) {
  const FixtureWeights weights(fixture);
  const auto model = reference_model_of(fixture, weights, Precision::F32);
  const FixtureHookInputs hooks(fixture);
  DropSink sink;
  // A module whose weights or hook inputs are missing or mis-shaped is a run failure
  // (parity::Error) for that module; the next one is still tried, as `parity check` does.
  for (const std::string& module : model->modules()) {
    try {
      model->replay(module, hooks, sink);
    } catch (const parity::Error&) {
    }
  }
  model->forward(forward_inputs(fixture), sink, nullptr);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return parity::fuzz::run_one([&] {
    const Fixture fixture(parity::fuzz::scratch().write("fixture.h5", parity::fuzz::as_bytes(data, size)));
    (void)comparable_keys(fixture);
    read_every_dataset(fixture);
    run_reference(fixture);
  });
}
