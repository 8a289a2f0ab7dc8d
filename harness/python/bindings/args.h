// The boundary of the Python module: every argument is converted to C++ here, with the GIL held,
// before any call releases it, and every mistake of the caller is named:
//   the wrong Python type (None for a path, a list for a dict)  -> TypeError "<argument>: expected ..., got <type>"
//   a value the call cannot use (a bad path, name, mode, shape) -> parity.InputError "<argument>: ..."
// parity.Error is left for failures that are not the caller's (errors.h). Nothing in this file
// may run without the GIL.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pybind11/pybind11.h>

#include "dtype.h"
#include "errors.h"

namespace parity::python {

namespace py = pybind11;

// The caller's type as they would write it: "NoneType", "list", "torch.Tensor", "numpy.ndarray".
std::string type_name(const py::handle& obj);

template <typename... Args>
[[noreturn]] void input_error(fmt::format_string<Args...> format, Args&&... args) {
  throw harness::InputError(fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
[[noreturn]] void type_error(fmt::format_string<Args...> format, Args&&... args) {
  throw py::type_error(fmt::format(format, std::forward<Args>(args)...));
}

// Whether a Python error raised while converting an argument is about the argument (an Exception
// other than MemoryError); KeyboardInterrupt, SystemExit and MemoryError propagate as they are.
inline bool caller_error(const py::error_already_set& e) {
  return e.matches(PyExc_Exception) && !e.matches(PyExc_MemoryError);
}

// A str (TypeError otherwise). A NUL character is refused (InputError): C and HDF5 would read the
// text only up to it, a different name than the caller wrote.
std::string str_arg(const py::handle& obj, const std::string& what);
std::optional<std::string> optional_str_arg(const py::handle& obj, const std::string& what);  // None -> nullopt

// A path: str, bytes or os.PathLike (TypeError otherwise); empty or holding a NUL: InputError.
std::filesystem::path path_arg(const py::handle& obj, const std::string& what);
// A path that names a file: as path_arg, and InputError when it is a directory ("a directory as a
// budget" would otherwise read as an empty file). A missing file is left to the reader, whose
// message names the file.
std::filesystem::path file_arg(const py::handle& obj, const std::string& what);
std::optional<std::filesystem::path> optional_file_arg(const py::handle& obj, const std::string& what);
std::optional<std::filesystem::path> optional_path_arg(const py::handle& obj, const std::string& what);

// A list or tuple of str (a bare str is refused: it is not a list of one name).
std::vector<std::string> str_list_arg(const py::handle& obj, const std::string& what);

// A dict as JSON through Python's json module (strict: NaN and Infinity are not JSON), so it reads
// as the CLI reads a file. TypeError when not a dict; InputError when it is not JSON.
nlohmann::json json_dict_arg(const py::handle& obj, const std::string& what);

// "[1, 2]": the coordinate of flat element `flat` of an array of `shape`.
std::string index_str(int64_t flat, const Shape& shape);

}  // namespace parity::python
