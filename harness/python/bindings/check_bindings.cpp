// parity.check / parity.compare / parity.diagnose / parity.html_report: the CLI's gates and
// reports in-process. Each returns the dict the CLI's --json writes (json.loads of it), so a
// Python caller and a CI job see the same numbers.
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "arrays.h"
#include "run/compare.h"
#include "run/diagnose.h"
#include "diagnose_report.h"
#include "html_report.h"
#include "json_bridge.h"
#include "report.h"

namespace parity::python {

using namespace harness;

namespace {

std::vector<Mode> modes_named(const std::vector<std::string>& names) {
  std::vector<Mode> modes;
  for (const std::string& name : names) {
    const std::optional<Mode> mode = mode_from_name(name);
    if (!mode) throw py::value_error("mode must be \"isolated\" or \"chained\", got \"" + name + "\"");
    modes.push_back(*mode);
  }
  if (modes.empty()) throw py::value_error("modes is empty: name \"isolated\" and/or \"chained\"");
  return modes;
}

std::optional<Precision> precision_named(const std::optional<std::string>& name) {
  if (!name) return std::nullopt;
  const std::optional<Precision> p = precision_from_name(*name);
  if (!p) throw py::value_error("precision must be \"f64\", \"f32\" or \"bf16\", got \"" + *name + "\"");
  return p;
}

Budget budget_for(const std::optional<std::filesystem::path>& path, const Fixture& fixture) {
  return path ? load_budget(*path) : builtin_budget(fixture.meta_string("dtype"));
}

}  // namespace

void bind_check(py::module_& m) {
  m.def(
      "check",
      [](const std::filesystem::path& fixture_path, const std::vector<std::string>& modes,
         const std::optional<std::filesystem::path>& budget_path, const std::optional<std::string>& precision,
         const std::string& hooks) {
        const Fixture fixture(fixture_path);
        const Budget budget = budget_for(budget_path, fixture);
        CheckResult result;
        {
          py::gil_scoped_release release;
          for (Mode mode : modes_named(modes))
            result.runs.push_back(run_check(fixture, budget, {mode, precision_named(precision), hooks, nullptr, Variants()}));
        }
        return to_python(reports::json_report(result));
      },
      py::arg("fixture"), py::arg("modes") = std::vector<std::string>{"isolated"}, py::arg("budget") = py::none(),
      py::arg("precision") = py::none(), py::arg("hooks") = "",
      "`parity check FIXTURE --mode M --json` as a dict (schema parity-check/1): modes [\"isolated\"] and/or\n"
      "[\"chained\"], budget TOML (default: built-in for the run dtype), precision \"f64\"/\"f32\"/\"bf16\" (default:\n"
      "the run dtype), hooks glob. result[\"verdict\"] is \"pass\" or \"fail\"; InputError on bad input.");
  m.def(
      "compare",
      [](const std::filesystem::path& base_path, const std::filesystem::path& target_path,
         const std::optional<std::filesystem::path>& budget_path, bool reference) {
        const Fixture base(base_path), target(target_path);
        const Budget budget = budget_path ? load_budget(*budget_path) : builtin_compare_budget(base, target);
        CheckResult result;
        {
          py::gil_scoped_release release;
          CompareOptions options;
          options.reference = reference;
          result.runs.push_back(run_compare(base, target, budget, options));
        }
        return to_python(reports::json_report(result));
      },
      py::arg("base"), py::arg("target"), py::arg("budget") = py::none(), py::arg("reference") = true,
      "`parity compare BASE TARGET --json` as a dict (mode \"compare\"; reference=False: no three-way view).");
  m.def(
      "diagnose",
      [](const std::filesystem::path& target_path, const std::optional<std::filesystem::path>& budget_path) {
        const Fixture target(target_path);
        const Budget budget = budget_for(budget_path, target);
        nlohmann::json out;
        {
          py::gil_scoped_release release;
          out = reports::diagnose_json(diagnose(target, budget, {}), std::nullopt);
        }
        return to_python(out);
      },
      py::arg("target"), py::arg("budget") = py::none(),
      "`parity diagnose TARGET --json` as a dict (schema parity-diagnose/1): the known bug, if any, behind a dump.");
  m.def(
      "html_report",
      [](const py::handle& result, const std::string& source) { return reports::html_report(from_python(result), source); },
      py::arg("result"), py::arg("source") = "<python>",
      "The self-contained HTML page of a check, compare or logprobs result dict (as `parity report`).");
}

}  // namespace parity::python
