// A bug-zoo case expects its gate to FAIL, first at the module where the bug lives. Its [expect]
// table names, per mode, the hook (a glob) that must be the first failure, and optionally the
// diagnosis `parity diagnose` must reach ("hf", or a reference variant's name):
//
//   [expect]
//   isolated = "model.layers.0.mlp.gate@top_k_weights"
//   chained = "model.layers.0.mlp.gate@top_k_weights"
//   diagnosis = "olmoe_router_topk_softmax"
//
// A zoo case names its bug instead (`[expect] bug = "olmoe_router_topk_softmax"`): the first
// failures and the diagnosis are then the known-bug registry's (references/models/known_bugs.toml).
// Such a case passes when every mode fails first where expected and, with a diagnosis, when
// `parity diagnose` names it; a gate that passes, or fails first anywhere else, fails the case.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "gate/budget.h"

namespace parity::harness {

struct CheckReport;

struct Expectation {
  std::map<Mode, std::string> first_failure;  // a hook glob per mode of the case
  std::string diagnosis;                      // "" = not checked
};

// The [expect] table of a case listing `modes`; InputError naming `source` on anything malformed.
Expectation parse_expectation(const toml::table& table, const std::vector<Mode>& modes, const std::string& source);

struct ModeExpectation {
  Mode mode = Mode::kIsolated;
  std::string expected;  // the hook glob
  std::string actual;    // the first failing hook, the first run problem, or "" when the run passed
  bool met = false;
};

struct ExpectationReport {
  std::vector<ModeExpectation> modes;
  std::string diagnosis_expected;  // "" = not checked
  std::string diagnosis_found;     // what `parity diagnose` says: "hf", a variant, or "unknown"
  bool met() const;
  std::string summary() const;  // one line: "expected failure reproduced: isolated ..., chained ..."
};

ExpectationReport check_expectation(const Expectation& expect, const std::vector<CheckReport>& runs);

}  // namespace parity::harness
