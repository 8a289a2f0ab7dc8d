// parity.Fixture: the C++ fixture reader (harness/io/fixture.h) from Python.
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "args.h"
#include "arrays.h"
#include "io/fixture.h"
#include "json_bridge.h"

namespace parity::python {

using harness::Fixture;

void bind_fixture(py::module_& m) {
  py::class_<Fixture>(m, "Fixture", "A fixture (golden/README.md), read by the C++ reader: InputError when malformed.")
      .def(py::init([](const py::handle& path) { return std::make_unique<Fixture>(file_arg(path, "path")); }),
           py::arg("path"))
      .def_property_readonly("path", [](const Fixture& f) { return f.path().string(); })
      .def_property_readonly("meta",
                             [](const Fixture& f) {
                               py::dict out;
                               for (const auto& [key, value] : f.meta())
                                 std::visit([&](const auto& v) { out[py::str(key)] = v; }, value);
                               return out;
                             },
                             "/meta attributes (config excluded: see config)")
      .def_property_readonly("config", [](const Fixture& f) { return to_python(f.config()); }, "the HF config as a dict")
      .def("names", [](const Fixture& f, const py::handle& group) { return f.names(str_arg(group, "group")); },
           py::arg("group"),
           "entry names of a group (\"inputs\", \"weights\", \"hooks\", \"outputs\") in the producer's order")
      .def("has",
           [](const Fixture& f, const py::handle& group, const py::handle& name) {
             return f.has(str_arg(group, "group"), str_arg(name, "name"));
           },
           py::arg("group"), py::arg("name"))
      .def("read",
           [](const Fixture& f, const py::handle& group, const py::handle& name) {
             return to_numpy(f.read(str_arg(group, "group"), str_arg(name, "name")));
           },
           py::arg("group"), py::arg("name"),
           "a tensor as numpy: float32 for float32/bfloat16 data (bf16 widened exactly), float64, or int64");
}

}  // namespace parity::python
