// `parity grad-audit DUMP [TARGET]`: flags -> run_grad_audit_plan (run/grad_audit.h) -> the
// terminal table and JSON. Exit code: 0 when every parameter learns (or is frozen) alike on both
// sides within its band, 1 otherwise; input and usage errors are thrown (exit 2).
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace parity::harness {

struct GradAuditFlags {
  std::string base, target;
  std::string budget;
  std::string weights;
  std::string json_out;
  bool failures_only = false;
};

CLI::App* add_grad_audit_command(CLI::App& app, GradAuditFlags& flags);
int run_grad_audit_command(const GradAuditFlags& flags);

}  // namespace parity::harness
