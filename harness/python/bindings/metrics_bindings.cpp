// parity.compare_tensors and budgets: the metrics and limits `parity check` gates on.
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "arrays.h"
#include "gate/budget.h"
#include "gate/tensor_metrics.h"

namespace parity::python {

using namespace harness;

namespace {

py::dict float_metrics_dict(const FloatMetrics& m, const Shape& shape) {
  py::dict d;
  d["count"] = m.count;
  d["rel_l2"] = m.rel_l2;
  d["hf_l2"] = m.hf_l2;
  d["ref_l2"] = m.ref_l2;
  d["max_abs"] = m.max_abs;
  d["max_abs_at"] = m.max_abs_index >= 0 ? py::cast(unravel(m.max_abs_index, shape)) : py::none();
  d["ref_at_max_abs"] = m.ref_at_max;
  d["hf_at_max_abs"] = m.hf_at_max;
  d["max_rel"] = m.max_rel;
  d["max_rel_floor"] = m.max_rel_floor;
  d["cosine"] = m.cosine;
  d["nonfinite"] = py::dict(py::arg("ref_nan") = m.ref_nan, py::arg("ref_inf") = m.ref_inf,
                            py::arg("hf_nan") = m.hf_nan, py::arg("hf_inf") = m.hf_inf);
  py::list worst;
  for (const ElementDiff& e : m.worst)
    worst.append(py::dict(py::arg("at") = unravel(e.index, shape), py::arg("ref") = e.ref, py::arg("hf") = e.hf,
                          py::arg("abs_diff") = e.abs_diff()));
  d["worst"] = worst;
  return d;
}

Mode mode_named(const std::string& name) {
  if (name == "compare") return Mode::kCompare;
  if (std::optional<Mode> mode = mode_from_name(name)) return *mode;
  throw py::value_error("mode must be \"isolated\", \"chained\" or \"compare\", got \"" + name + "\"");
}

}  // namespace

void bind_metrics(py::module_& m) {
  m.def(
      "compare_tensors",
      [](const py::handle& ref, const py::handle& hf) {
        const auto r = as_f64(ref, "ref"), h = as_f64(hf, "hf");
        const Shape shape = shape_of(h);
        if (shape_of(r) != shape)
          throw py::value_error("shape mismatch: ref " + shape_str(shape_of(r)) + " vs hf " + shape_str(shape));
        FloatMetrics metrics;
        {
          py::gil_scoped_release release;
          metrics = compare_floats(span_of(r), span_of(h));
        }
        return float_metrics_dict(metrics, shape);
      },
      py::arg("ref"), py::arg("hf"),
      "The metrics `parity check` reports for one hook (docs/cli.md \"JSON report\"): rel_l2 = ‖ref − hf‖ / ‖hf‖,\n"
      "max_abs and where, max_rel, cosine, NaN/Inf counts, the 5 worst elements. float64 C-contiguous\n"
      "arrays are read in place; float32 ones are converted to float64 (exactly); other dtypes raise TypeError.");

  py::class_<Limit>(m, "Limit", "One bound: metric <= value (cosine: >=).")
      .def_property_readonly("metric", [](const Limit& l) { return std::string(metric_name(l.metric)); })
      .def_readonly("value", &Limit::value)
      .def("allows", &Limit::allows, py::arg("measured"), "NaN never passes")
      .def("__repr__", &Limit::str);
  py::class_<Budget>(m, "Budget", "A tolerance budget (docs/budgets.md \"Budget format\").")
      .def_static(
          "load",
          [](const std::filesystem::path& path, const std::optional<std::string>& run_dtype) {
            const Budget file = load_budget(path);
            return run_dtype ? effective_budget(file, *run_dtype) : file;
          },
          py::arg("path"), py::arg("run_dtype") = py::none(),
          "a budget or case TOML file; with run_dtype (\"float32\", \"bfloat16\"), laid over that dtype's built-in\n"
          "budget as a run gates on it (a file states only what differs). InputError when malformed")
      .def_static(
          "parse",
          [](const std::string& text, const std::string& source, const std::optional<std::string>& run_dtype) {
            const Budget file = parse_budget(text, source);
            return run_dtype ? effective_budget(file, *run_dtype) : file;
          },
          py::arg("toml_text"), py::arg("source") = "<string>", py::arg("run_dtype") = py::none())
      .def_static("builtin", &builtin_budget, py::arg("run_dtype"), "the built-in budget of \"float32\" or \"bfloat16\" runs")
      .def_readonly("source", &Budget::source)
      .def_readonly("near_tie_rel", &Budget::near_tie_rel)
      .def(
          "limit_for",
          [](const Budget& b, const std::string& mode, const std::string& hook, bool top_k) {
            return b.limit_for(mode_named(mode), hook, top_k);
          },
          py::arg("mode"), py::arg("hook"), py::arg("top_k") = false,
          "the limit the most specific rule (else the default) sets for this hook");
}

}  // namespace parity::python
