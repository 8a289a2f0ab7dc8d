// parity.check / parity.compare / parity.diagnose / parity.html_report: the CLI's gates and
// reports in-process. Each returns the dict the CLI's --json writes (json.loads of it), so a
// Python caller and a CI job see the same numbers.
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <algorithm>

#include "args.h"
#include "arrays.h"
#include "run/run_case.h"
#include "audit_report.h"
#include "diagnose_report.h"
#include "html_report.h"
#include "json_bridge.h"
#include "logprobs_report.h"
#include "report.h"

namespace parity::python {

using namespace harness;

namespace {

std::vector<Mode> modes_named(const py::handle& obj) {
  std::vector<Mode> modes;
  for (const std::string& name : str_list_arg(obj, "modes")) {
    const std::optional<Mode> mode = mode_from_name(name);
    if (!mode)
      input_error("modes: expected \"isolated\", \"chained\", \"grad.isolated\" or \"grad.chained\", got \"{}\"", name);
    if (std::find(modes.begin(), modes.end(), *mode) != modes.end())
      input_error("modes: \"{}\" is listed twice (each mode runs once)", name);
    modes.push_back(*mode);
  }
  if (modes.empty()) input_error("modes is empty: name \"isolated\", \"chained\", \"grad.isolated\" or \"grad.chained\"");
  return modes;
}

std::optional<Precision> precision_named(const py::handle& obj) {
  const std::optional<std::string> name = optional_str_arg(obj, "precision");
  if (!name) return std::nullopt;
  const std::optional<Precision> p = precision_from_name(*name);
  if (!p) input_error("precision: expected \"f64\", \"f32\" or \"bf16\", got \"{}\"", *name);
  return p;
}

std::optional<Budget> budget_file(const py::handle& path) {
  const std::optional<std::filesystem::path> file = optional_file_arg(path, "budget");
  return file ? std::optional<Budget>(load_budget(*file)) : std::nullopt;
}

}  // namespace

void bind_check(py::module_& m) {
  m.def(
      "check",
      [](const py::handle& fixture_path, const py::handle& modes, const py::handle& budget_path,
         const py::handle& precision, const py::handle& hooks, const py::handle& weights, const py::handle& baseline) {
        CheckPlan plan;  // the CLI's run path (run/run_case.h), so both give the same numbers
        plan.fixture = file_arg(fixture_path, "fixture");
        plan.modes = modes_named(modes);
        plan.precision = precision_named(precision);
        plan.budget = budget_file(budget_path);
        plan.hooks = str_arg(hooks, "hooks");
        plan.weights = optional_path_arg(weights, "weights");
        plan.baseline.compare_to = optional_file_arg(baseline, "baseline");
        CheckResult result;
        {
          py::gil_scoped_release release;
          result = run_check_plan(plan);
        }
        return to_python(reports::json_report(result));
      },
      py::arg("fixture"), py::arg("modes") = std::vector<std::string>{"isolated"}, py::arg("budget") = py::none(),
      py::arg("precision") = py::none(), py::arg("hooks") = "", py::arg("weights") = py::none(),
      py::arg("baseline") = py::none(),
      "`parity check FIXTURE --mode M --json` as a dict (schema parity-check/1): modes [\"isolated\"] and/or\n"
      "[\"chained\"], budget TOML (over the built-in one for the run dtype), precision \"f64\"/\"f32\"/\"bf16\"\n"
      "(default: the run dtype), hooks glob, weights (a checkpoint folder), baseline (an accepted baseline JSON).\n"
      "result[\"verdict\"] is \"pass\" or \"fail\"; InputError on bad input.");
  m.def(
      "check_case",
      [](const py::handle& case_arg, bool write_baseline) {
        const std::filesystem::path case_path = file_arg(case_arg, "case");
        CaseResult result;
        {
          py::gil_scoped_release release;
          result = run_case(case_path, write_baseline);
        }
        return to_python(result.check ? reports::json_report(*result.check) : reports::logprobs_json(*result.logprobs));
      },
      py::arg("case"), py::arg("write_baseline") = false,
      "`parity check --case FILE --json` (or `parity logprobs --case FILE --json` for a logprob case) as a dict:\n"
      "the case's fixture, modes, budget, baseline and [expect], through the CLI's own run path. write_baseline:\n"
      "accept this run as the case's baseline (written only when the gate passes).");
  m.def(
      "compare",
      [](const py::handle& base_path, const py::handle& target_path, const py::handle& budget_path, bool reference,
         const py::handle& weights, bool grad) {
        ComparePlan plan;
        plan.grad = grad;
        plan.base = file_arg(base_path, "base");
        plan.target = file_arg(target_path, "target");
        plan.budget = budget_file(budget_path);
        plan.reference = reference;
        plan.weights = optional_path_arg(weights, "weights");
        CheckResult result;
        {
          py::gil_scoped_release release;
          result = run_compare_plan(plan);
        }
        return to_python(reports::json_report(result));
      },
      py::arg("base"), py::arg("target"), py::arg("budget") = py::none(), py::arg("reference") = true,
      py::arg("weights") = py::none(), py::arg("grad") = false,
      "`parity compare BASE TARGET --json` as a dict (mode \"compare\"; reference=False: no noise floor and no three-way view;\n"
      "grad=True: `--grad`, a second run of mode \"grad.compare\" comparing the dumps' gradients).");
  m.def(
      "grad_audit",
      [](const py::handle& dump_path, const py::handle& target_path, const py::handle& budget_path,
         const py::handle& weights) {
        GradAuditPlan plan;
        plan.base = file_arg(dump_path, "dump");
        if (!target_path.is_none()) plan.target = file_arg(target_path, "target");
        plan.budget = budget_file(budget_path);
        plan.weights = optional_path_arg(weights, "weights");
        GradAudit audit;
        {
          py::gil_scoped_release release;
          audit = run_grad_audit_plan(plan);
        }
        return to_python(reports::audit_json(audit));
      },
      py::arg("dump"), py::arg("target") = py::none(), py::arg("budget") = py::none(), py::arg("weights") = py::none(),
      "`parity grad-audit DUMP [TARGET] --json` as a dict: which parameters learn on each side (target None: the\n"
      "reference's own backward), each one's gradient norms, their ratio and its band, and every router in words.");
  m.def(
      "diagnose",
      [](const py::handle& target_path, const py::handle& budget_path) {
        DiagnosePlan plan;
        plan.fixture = file_arg(target_path, "target");
        plan.budget = budget_file(budget_path);
        nlohmann::json out;
        {
          py::gil_scoped_release release;
          out = reports::diagnose_json(run_diagnose_plan(plan), std::nullopt);
        }
        return to_python(out);
      },
      py::arg("target"), py::arg("budget") = py::none(),
      "`parity diagnose TARGET --json` as a dict (schema parity-diagnose/1): the known bug, if any, behind a dump.");
  m.def(
      "html_report",
      [](const py::handle& result, const py::handle& source) {
        return reports::html_report(json_dict_arg(result, "result"), str_arg(source, "source"));
      },
      py::arg("result"), py::arg("source") = "<python>",
      "The self-contained HTML page of a check, compare or logprobs result dict (as `parity report`).");
}

}  // namespace parity::python
