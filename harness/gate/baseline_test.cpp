#include "gate/baseline.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include <doctest/doctest.h>

#include "errors.h"

namespace parity::harness {

namespace {

std::string error_of(auto&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

BaselineFile accepted(std::vector<MetricValue> values) { return {"base.json", "check", "cases/x.toml", std::move(values)}; }

const BaselineEntry& only(const BaselineReport& r) {
  REQUIRE(r.entries.size() == 1);
  return r.entries[0];
}

}  // namespace

TEST_CASE("baseline band: two-sided, rel·|ref| or the floor, whichever is wider") {
  const BaselineFile base = accepted({{"isolated", "model.norm", "rel_l2", 1e-7}});
  BandBudget bands;
  bands.default_band = {0.1, 1e-9, "b.toml:2"};
  auto drift = [&](double value) {
    return only(compare_to_baseline(base, "check", {{"isolated", "model.norm", "rel_l2", value}}, bands)).drift;
  };
  CHECK(drift(1e-7) == Drift::kWithin);
  CHECK(drift(1.1e-7 - 1e-16) == Drift::kWithin);
  CHECK(drift(1.2e-7) == Drift::kGrew);
  CHECK(drift(0.8e-7) == Drift::kDropped);  // an error that drops is flagged too
  CHECK(drift(NAN) == Drift::kNotFinite);
  CHECK(drift(INFINITY) == Drift::kNotFinite);
  const BaselineEntry e = only(compare_to_baseline(base, "check", {{"isolated", "model.norm", "rel_l2", 1e-7}}, bands));
  CHECK(e.low == doctest::Approx(0.9e-7));
  CHECK(e.high == doctest::Approx(1.1e-7));
  CHECK(e.rule == "b.toml:2");

  // An exact zero: the floor is the whole band.
  const BaselineFile zero = accepted({{"chained", "lm_head", "max_abs", 0}});
  auto zero_drift = [&](double value) {
    return only(compare_to_baseline(zero, "check", {{"chained", "lm_head", "max_abs", value}}, bands)).drift;
  };
  CHECK(zero_drift(5e-10) == Drift::kWithin);
  CHECK(zero_drift(2e-9) == Drift::kGrew);
  CHECK(zero_drift(-2e-9) == Drift::kDropped);
}

TEST_CASE("baseline: a metric on one side only fails, both NaN is unchanged, another kind is refused") {
  const BaselineFile base = accepted({{"isolated", "a", "rel_l2", 1}, {"isolated", "b", "rel_l2", NAN}});
  const BaselineReport r = compare_to_baseline(
      base, "check", {{"isolated", "b", "rel_l2", NAN}, {"isolated", "c", "rel_l2", 1}}, BandBudget{});
  REQUIRE(r.entries.size() == 3);
  CHECK(r.entries[0].drift == Drift::kWithin);  // b: NaN then, NaN now
  CHECK(r.entries[1].drift == Drift::kNew);     // c: not in the baseline
  CHECK(r.entries[2].drift == Drift::kMissing);  // a: not in this run
  CHECK_FALSE(r.passed());
  CHECK(r.first_failure() == "baseline: isolated c rel_l2 new (1, baseline nan, band [nan, nan])");

  auto nonfinite_drift = [](double then, double now) {
    return only(compare_to_baseline(accepted({{"chained", "h", "max_abs", then}}), "check",
                                    {{"chained", "h", "max_abs", now}}, BandBudget{}))
        .drift;
  };
  CHECK(nonfinite_drift(INFINITY, INFINITY) == Drift::kWithin);
  CHECK(nonfinite_drift(INFINITY, -INFINITY) == Drift::kNotFinite);
  CHECK(nonfinite_drift(INFINITY, NAN) == Drift::kNotFinite);
  CHECK(nonfinite_drift(NAN, 1.0) == Drift::kNotFinite);

  const BaselineReport other = compare_to_baseline(base, "logprobs", {{"", "", "kl_k3", 1}}, BandBudget{});
  CHECK_FALSE(other.passed());
  CHECK(other.problems.at(0) == "baseline base.json holds check metrics, this is a logprobs run");
  CHECK_FALSE(compare_to_baseline(base, "check", {}, BandBudget{}).passed());
}

TEST_CASE("bands: the most specific rule wins; a rule that matches no metric fails the comparison") {
  const BandBudget bands = parse_bands(R"(
[bands]
default = { rel = 0.1, floor = 1e-9 }
[[bands.rule]]
hooks = "*@top_k_index"
rel = 0
floor = 0
[[bands.rule]]
hooks = "*@top_k_index"
mode = "chained"
metric = "near_ties"
rel = 0.5
floor = 2
[[bands.rule]]
metric = "kl_*"
rel = 0.3
)", "b.toml");
  REQUIRE(bands.rules.size() == 3);
  CHECK(bands.rules[2].band.floor == 1e-9);  // a rule's missing floor is the default band's, not 0
  const MetricValue isolated{"isolated", "model.layers.0.mlp.gate@top_k_index", "near_ties", 1};
  const MetricValue chained{"chained", "model.layers.0.mlp.gate@top_k_index", "near_ties", 1};
  CHECK(bands.band_for(isolated).where == "b.toml:4");
  CHECK(bands.band_for(chained).where == "b.toml:8");
  CHECK(bands.band_for({"", "", "kl_k3", 1}).rel == 0.3);
  CHECK(bands.band_for({"isolated", "model.norm", "rel_l2", 1}).where == "b.toml:3");

  const BaselineReport r = compare_to_baseline(accepted({isolated}), "check", {isolated}, bands);
  CHECK(r.count(Drift::kWithin) == 1);
  REQUIRE(r.problems.size() == 2);
  CHECK(r.problems[0] == "band rule at b.toml:8 matches no metric of the baseline");
  CHECK(r.problems[1] == "band rule at b.toml:14 matches no metric of the baseline");
  CHECK_FALSE(r.passed());
}

TEST_CASE("bands: every malformed line is refused, naming the file and line") {
  auto error = [](const std::string& toml) { return error_of([&] { parse_bands(toml, "b.toml"); }); };
  CHECK(parse_bands("[isolated]\ndefault = { rel_l2 = 1e-5 }\n", "b.toml").default_band.where == "built-in");
  CHECK(error("[bands]\ndefault = { rel = -0.1 }\n") == "[budget b.toml:2] \"rel\" must be a finite non-negative number");
  CHECK(error("[bands]\ndefault = { rel = inf }\n") == "[budget b.toml:2] \"rel\" must be a finite non-negative number");
  CHECK(error("[bands]\ndefault = { relative = 0.1 }\n") == "[budget b.toml:2] unknown key \"relative\" in a band (rel, floor)");
  CHECK(error("[bands]\nrules = []\n") == "[budget b.toml:2] unknown key \"rules\" in [bands] (default, rule)");
  CHECK(error("[[bands.rule]]\nrel = 0\n") ==
        "[budget b.toml:1] a band rule needs hooks, mode or metric (the default band covers everything else)");
  CHECK(error("[[bands.rule]]\nmode = \"both\"\n") == "[budget b.toml:1] mode must be \"isolated\", \"chained\" or \"compare\"");
  CHECK(error("[[bands.rule]]\nhooks = 3\n") == "[budget b.toml:1] \"hooks\" must be a non-empty string");
  CHECK(error("bands = 1\n") == "[budget b.toml:1] bands must be a table ([bands])");
}

TEST_CASE("baseline file: written one value per line, read back; malformed files refused") {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "parity_baseline_test";
  std::filesystem::create_directories(dir);
  const std::vector<MetricValue> values = {{"isolated", "model.norm", "rel_l2", 1.5e-7},
                                           {"isolated", "x", "max_abs", NAN},
                                           {"isolated", "y", "max_abs", -INFINITY}};
  const std::string text = baseline_json_text("check", "cases/x.toml", values);
  CHECK(text.find("\n    {\"mode\":\"isolated\",\"hook\":\"model.norm\",\"metric\":\"rel_l2\",\"value\":1.5e-07},\n") !=
        std::string::npos);
  auto write = [&](const std::string& name, const std::string& body) {
    std::ofstream(dir / name) << body;
    return dir / name;
  };
  const BaselineFile read = read_baseline(write("ok.json", text));
  REQUIRE(read.values.size() == 3);
  CHECK(read.kind == "check");
  CHECK(read.accepted_from == "cases/x.toml");
  CHECK(read.values[0].value == 1.5e-7);
  CHECK(std::isnan(read.values[1].value));
  CHECK(read.values[2].value == -INFINITY);  // round-trips: Inf is not folded into NaN
  CHECK(compare_to_baseline(read, "check", values, BandBudget{}).passed());

  auto error = [&](const std::string& body) {
    const std::filesystem::path p = write("bad.json", body);
    return error_of([&] { read_baseline(p); });
  };
  const std::string bad = (dir / "bad.json").string();
  CHECK(error("{").starts_with("[baseline " + bad + "] not JSON: "));
  CHECK(error("{\"schema\": \"parity-check/1\"}") == "[baseline " + bad + "] not a baseline (schema \"parity-baseline/1\" expected)");
  CHECK(error(R"({"schema": "parity-baseline/1", "kind": "check", "values": []})") ==
        "[baseline " + bad + "] holds no values: an empty baseline would check nothing");
  CHECK(error(R"({"schema": "parity-baseline/1", "kind": "check", "values": [{"metric": "a", "value": 1}, {"metric": "a", "value": 2}]})") ==
        "[baseline " + bad + "] values[1] repeats a");
  CHECK(error(R"({"schema": "parity-baseline/1", "kind": "check", "values": [{"metric": "a", "value": "1"}]})") ==
        "[baseline " + bad + "] values[0].value must be a number, \"nan\", \"inf\" or \"-inf\"");
  CHECK(error(R"({"schema": "parity-baseline/1", "kind": "hooks", "values": [{"metric": "a", "value": 1}]})") ==
        "[baseline " + bad + "] kind must be \"check\" or \"logprobs\"");
  CHECK(error_of([&] { read_baseline(dir / "absent.json"); }) ==
        "[baseline " + (dir / "absent.json").string() + "] cannot open the file");
  std::filesystem::remove_all(dir);
}

}  // namespace parity::harness
