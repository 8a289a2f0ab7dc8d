#include "logprobs/gate.h"

#include <doctest/doctest.h>

#include "errors.h"

namespace parity::harness {

namespace {

std::string budget_error(const std::string& toml) {
  try {
    parse_logprob_budget(toml, "b.toml");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("logprob budget: bounds by metric name, options, and every malformed line refused") {
  const LogprobBudget b = parse_logprob_budget(R"(
[logprobs]
abs_diff_seq_mean = { max = 0.02 }
ess_seq_mean = { min = 0.99 }
kl_k3 = { min = 0, max = 1e-3 }
[logprobs.options]
catastrophic_threshold = 2.5
context = 3
)", "b.toml");
  REQUIRE(b.bounds.size() == 3);
  CHECK(b.bounds[0].str() == "<= 0.02");
  CHECK(b.bounds[1].str() == ">= 0.99");
  CHECK(b.bounds[2].str() == "in [0, 0.001]");
  CHECK(b.bounds[1].where == "b.toml:4");
  CHECK(b.options.catastrophic_threshold == 2.5);
  CHECK(b.options.context == 3);
  CHECK(b.options.is_threshold == 2.0);  // untouched default
  CHECK_FALSE(b.bounds[0].allows(std::nan("")));
  CHECK(b.bounds[2].allows(0.0));
  CHECK_FALSE(b.bounds[2].allows(2e-3));

  CHECK(budget_error("[logprobs]\nabs_diff = { max = 1 }").find("unknown metric \"abs_diff\"") != std::string::npos);
  CHECK(budget_error("[logprobs]\nkl_k3 = { }").find("neither max nor min") != std::string::npos);
  CHECK(budget_error("[logprobs]\nkl_k3 = { max = inf }").find("finite") != std::string::npos);
  CHECK(budget_error("[logprobs]\nkl_k3 = { below = 1 }").find("unknown key \"below\"") != std::string::npos);
  CHECK(budget_error("[logprobs]\nkl_k3 = 0.1").find("{ max = <limit> }") != std::string::npos);
  CHECK(budget_error("[logprobs]\nkl_k3 = { min = 2, max = 1 }").find("min > max") != std::string::npos);
  CHECK(budget_error("[logprobs]\n[logprobs.options]\ncontext = 2").find("gates no metric") != std::string::npos);
  CHECK(budget_error("[logprobs]\nkl_k3 = { max = 1 }\n[logprobs.options]\ntop = 3").find("unknown option") !=
        std::string::npos);
  CHECK(budget_error("[isolated]\ndefault = { rel_l2 = 1e-5 }").find("use it with parity check") != std::string::npos);
  CHECK(budget_error("run = \"x.h5\"\n[logprobs]\nkl_k3 = { max = 1 }").find("is a case file") !=
        std::string::npos);  // case keys only in a case file
  CHECK(budget_error("[logprobs\n").find("b.toml:") != std::string::npos);
}

TEST_CASE("logprob gate: fails on a bound, on NaN and on non-finite logprobs, and passes otherwise") {
  LogprobRun run;
  run.source = "test";
  run.input_ids = {1, 2, 3};
  run.seq_offsets = {0, 3};
  run.loss_mask = {0, 1, 1};
  run.train = {0, -1.0, -2.0};
  run.rollout = {0, -1.0, -2.5};
  LogprobBudget budget = parse_logprob_budget("[logprobs]\nabs_diff_max = { max = 0.6 }", "b.toml");
  CHECK(gate_logprobs(run, budget).passed());
  budget.bounds[0].max = 0.4;
  const LogprobReport failed = gate_logprobs(run, budget);
  CHECK_FALSE(failed.passed());
  CHECK(failed.verdicts[0].value == 0.5);
  budget = parse_logprob_budget("[logprobs]\nprob_diff_std = { max = 1 }", "b.toml");
  run.loss_mask = {0, 0, 1};  // one token: a sample std is undefined
  CHECK_FALSE(gate_logprobs(run, budget).passed());
  budget = parse_logprob_budget("[logprobs]\nabs_diff_max = { max = 1 }", "b.toml");
  run.loss_mask = {0, 1, 1};
  run.rollout[1] = std::nan("");
  const LogprobReport nonfinite = gate_logprobs(run, budget);
  CHECK(nonfinite.verdicts[0].passed);
  CHECK_FALSE(nonfinite.passed());  // whatever the budget says
  REQUIRE(nonfinite.problems.size() == 1);
  CHECK(nonfinite.problems[0].find("1 scored token(s)") != std::string::npos);
}

}  // namespace parity::harness
