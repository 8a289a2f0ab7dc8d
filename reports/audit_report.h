// Writers for `parity grad-audit` (run/grad_audit.h): the terminal table of parameters with each
// side's gradient norm and their ratio, the routers in words, the verdict; and JSON ("schema":
// "parity-grad-audit/1", docs/cli.md "parity grad-audit").
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "run/grad_audit.h"

namespace parity::reports {

std::string audit_text(const harness::GradAudit& audit, bool failures_only);
nlohmann::json audit_json(const harness::GradAudit& audit);

}  // namespace parity::reports
