// parity.compare_tensors and budgets: the metrics and limits `parity check` gates on.
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "args.h"
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
  if (name == "grad.compare") return Mode::kGradCompare;
  if (std::optional<Mode> mode = mode_from_name(name)) return *mode;
  input_error("mode: expected \"isolated\", \"chained\", \"compare\", \"grad.isolated\", \"grad.chained\" or "
              "\"grad.compare\", got \"{}\"", name);
}

std::optional<std::string> run_dtype_arg(const py::handle& obj) { return optional_str_arg(obj, "run_dtype"); }

}  // namespace

void bind_metrics(py::module_& m) {
  m.def(
      "compare_tensors",
      [](const py::handle& ref, const py::handle& hf) {
        const auto r = as_f64(ref, "ref"), h = as_f64(hf, "hf");
        const Shape shape = shape_of(h);
        if (shape_of(r) != shape) input_error("shape mismatch: ref {} vs hf {}", shape_str(shape_of(r)), shape_str(shape));
        // Nothing compared is not a pass: rel_l2 0 and cosine 1 of no elements would read as one.
        if (h.size() == 0) input_error("empty comparison: ref and hf have no elements (shape {})", shape_str(shape));
        const std::span<const double> ref_values = span_of(r), hf_values = span_of(h);  // r, h stay alive
        FloatMetrics metrics;
        {
          py::gil_scoped_release release;
          metrics = compare_floats(ref_values, hf_values);
        }
        return float_metrics_dict(metrics, shape);
      },
      py::arg("ref"), py::arg("hf"),
      "The metrics `parity check` reports for one hook (docs/cli.md \"JSON report\"): rel_l2 = ‖ref − hf‖ / ‖hf‖,\n"
      "max_abs and where, max_rel, cosine, NaN/Inf counts, the 5 worst elements. float64 C-contiguous\n"
      "arrays are read in place; float32 ones are converted to float64 (exactly); other dtypes raise TypeError\n"
      "naming the argument, different shapes or no elements parity.InputError. NaN/Inf are counted in\n"
      "\"nonfinite\" (and make rel_l2 NaN), never dropped.");

  py::class_<Limit>(m, "Limit", "One bound: metric <= value (cosine: >=).")
      .def_property_readonly("metric", [](const Limit& l) { return std::string(metric_name(l.metric)); })
      .def_readonly("value", &Limit::value)
      .def("allows", &Limit::allows, py::arg("measured"), "NaN never passes")
      .def("__repr__", &Limit::str);
  py::class_<Budget>(m, "Budget", "A tolerance budget (docs/budgets.md \"Budget format\").")
      .def_static(
          "load",
          [](const py::handle& path, const py::handle& dtype) {
            const std::optional<std::string> run_dtype = run_dtype_arg(dtype);
            const Budget file = load_budget(file_arg(path, "path"));
            return run_dtype ? effective_budget(file, *run_dtype) : file;
          },
          py::arg("path"), py::arg("run_dtype") = py::none(),
          "a budget or case TOML file; with run_dtype (\"float32\", \"bfloat16\"), laid over that dtype's built-in\n"
          "budget as a run gates on it (a file states only what differs). InputError when malformed")
      .def_static(
          "parse",
          [](const py::handle& text, const py::handle& source, const py::handle& dtype) {
            const std::string toml = str_arg(text, "toml_text"), name = str_arg(source, "source");
            const std::optional<std::string> run_dtype = run_dtype_arg(dtype);
            const Budget file = parse_budget(toml, name);
            return run_dtype ? effective_budget(file, *run_dtype) : file;
          },
          py::arg("toml_text"), py::arg("source") = "<string>", py::arg("run_dtype") = py::none())
      .def_static(
          "builtin", [](const py::handle& dtype) { return builtin_budget(str_arg(dtype, "run_dtype")); },
          py::arg("run_dtype"), "the built-in budget of \"float32\" or \"bfloat16\" runs")
      .def_readonly("source", &Budget::source)
      .def_readonly("near_tie_rel", &Budget::near_tie_rel)
      .def(
          "limit_for",
          [](const Budget& b, const py::handle& mode, const py::handle& hook, bool top_k) {
            return b.limit_for(mode_named(str_arg(mode, "mode")), str_arg(hook, "hook"), top_k);
          },
          py::arg("mode"), py::arg("hook"), py::arg("top_k") = false,
          "the limit the most specific rule (else the default) sets for this hook");
}

}  // namespace parity::python
