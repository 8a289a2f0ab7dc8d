#include "run/noise_floor.h"

#include <cmath>

#include <doctest/doctest.h>

#include "gate/tensor_metrics.h"
#include "run/hook_gate.h"

namespace parity::harness {

namespace {

HookResult floor_gated(double rel_l2, std::optional<double> floor, Limit limit = {Metric::kFloorRatio, 8, 2.4e-7}) {
  HookResult r;
  r.hook = "model.layers.0.mlp";
  r.limit = limit;
  // A tensor whose rel_l2 against [1, 0] is exactly rel_l2.
  FloatMetrics m = compare_floats(std::vector<double>{1 + rel_l2, 0}, std::vector<double>{1, 0});
  if (floor) r.floor = compare_floats(std::vector<double>{1 + *floor, 0}, std::vector<double>{1, 0});
  gate_floats(r, m, kCheckSides);
  return r;
}

}  // namespace

TEST_CASE("noise floor: a floor_ratio limit passes within k x the floor and fails beyond it") {
  CHECK(floor_gated(7e-5, 1e-5).status == Status::kPass);
  const HookResult over = floor_gated(9e-5, 1e-5);
  CHECK(over.status == Status::kFail);
  CHECK(over.message.find("9 x its noise floor") != std::string::npos);
  CHECK(over.measured.value() == doctest::Approx(9).epsilon(1e-6));
}

TEST_CASE("noise floor: min_rel_l2 is the bound where the floor is zero, and only there") {
  CHECK(floor_gated(2e-7, 0.0).status == Status::kPass);   // round-off of an elementwise op
  CHECK(floor_gated(3e-7, 0.0).status == Status::kFail);
  CHECK(floor_gated(0.0, 0.0).status == Status::kPass);
  CHECK(floor_gated(3e-7, 0.0).floor_ratio() == INFINITY);
}

TEST_CASE("noise floor: a hook without a floor fails a floor_ratio limit, with its reason") {
  const HookResult r = floor_gated(1e-9, std::nullopt);
  CHECK(r.status == Status::kFail);
  CHECK(r.message.find("no noise floor") != std::string::npos);
  // Other limits do not need one.
  CHECK(floor_gated(1e-9, std::nullopt, {Metric::kRelL2, 1e-5}).status == Status::kPass);
}

TEST_CASE("noise floor: the capture hands back what the second opinion emitted, by key") {
  FloorCapture capture;
  Array a({2});
  a.data = {1, 2};
  capture.emit("x", a);
  REQUIRE(capture.find("x") != nullptr);
  CHECK(capture.find("x")->data == a.data);
  CHECK(capture.find("y") == nullptr);
  capture.clear();
  CHECK(capture.find("x") == nullptr);
}

}  // namespace parity::harness
