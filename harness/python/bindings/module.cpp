// parity._parity: the pybind11 module behind `import parity` (harness/python/parity/__init__.py).
// Each area binds in its own file; this one registers them and maps C++ errors to Python ones:
// parity::harness::InputError -> parity.InputError (a ValueError), parity::Error -> parity.Error (a
// RuntimeError), with the CLI's one-line messages.
#include <pybind11/pybind11.h>

#include "error.h"
#include "errors.h"

namespace py = pybind11;

namespace parity::python {
void bind_fixture(py::module_& m);
void bind_metrics(py::module_& m);
void bind_logprobs(py::module_& m);
void bind_reference(py::module_& m);
void bind_check(py::module_& m);
void bind_bugs(py::module_& m);
}  // namespace parity::python

PYBIND11_MODULE(_parity, m) {
  m.doc() = "parity: the Gemma-4 / OLMoE parity harness in-process (docs/python.md).";
  static py::exception<parity::Error> error(m, "Error", PyExc_RuntimeError);
  static py::exception<parity::harness::InputError> input_error(m, "InputError", PyExc_ValueError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const parity::harness::InputError& e) {
      input_error(e.what());
    } catch (const parity::Error& e) {
      error(e.what());
    }
  });
  parity::python::bind_fixture(m);
  parity::python::bind_metrics(m);
  parity::python::bind_logprobs(m);
  parity::python::bind_reference(m);
  parity::python::bind_check(m);
  parity::python::bind_bugs(m);
}
