// Writers for `parity diagnose`: the terminal ranking with the verdict and the bug's explanation,
// and JSON ("schema": "parity-diagnose/1", docs/cli.md "parity diagnose").
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "run/diagnose.h"

namespace parity::reports {

// expected: what a case or --expect asks for ("hf" or a variant), nullopt when nothing is asked.
std::string diagnose_text(const harness::Diagnosis& d, const std::optional<std::string>& expected);
nlohmann::json diagnose_json(const harness::Diagnosis& d, const std::optional<std::string>& expected);

}  // namespace parity::reports
