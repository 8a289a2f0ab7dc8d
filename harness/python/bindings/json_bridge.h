// JSON values across the boundary: through Python's json module, so a dict that parity writes
// equals the CLI's --json output parsed with json.loads, key for key. With the GIL held.
#pragma once

#include <nlohmann/json.hpp>
#include <pybind11/pybind11.h>

namespace parity::python {

namespace py = pybind11;

inline py::object to_python(const nlohmann::json& j) {
  return py::module_::import("json").attr("loads")(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

// Dicts from Python: json_dict_arg (args.h), strict and naming the argument.

}  // namespace parity::python
