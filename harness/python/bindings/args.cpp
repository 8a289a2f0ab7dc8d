#include "args.h"

#include <system_error>

namespace parity::python {

std::string type_name(const py::handle& obj) {
  const py::handle type = reinterpret_cast<PyObject*>(Py_TYPE(obj.ptr()));
  const std::string name = py::str(type.attr("__qualname__"));
  const std::string module = py::str(type.attr("__module__"));
  return module == "builtins" ? name : module + "." + name;
}

namespace {

void refuse_nul(const std::string& text, const std::string& what) {
  if (text.find('\0') != std::string::npos)
    input_error("{}: \"{}\\0...\" holds a NUL character (it would be read only up to it)", what,
                text.substr(0, text.find('\0')));
}

}  // namespace

std::string str_arg(const py::handle& obj, const std::string& what) {
  if (!py::isinstance<py::str>(obj)) type_error("{}: expected a str, got {}", what, type_name(obj));
  std::string text = obj.cast<std::string>();
  refuse_nul(text, what);
  return text;
}

std::optional<std::string> optional_str_arg(const py::handle& obj, const std::string& what) {
  if (obj.is_none()) return std::nullopt;
  return str_arg(obj, what);
}

std::filesystem::path path_arg(const py::handle& obj, const std::string& what) {
  if (!py::isinstance<py::str>(obj) && !py::isinstance<py::bytes>(obj) && !py::hasattr(obj, "__fspath__"))
    type_error("{}: expected a path (str or os.PathLike), got {}", what, type_name(obj));
  const py::module_ os = py::module_::import("os");
  py::object text;
  try {
    text = os.attr("fsdecode")(os.attr("fspath")(obj));
  } catch (py::error_already_set& e) {
    if (!caller_error(e)) throw;
    type_error("{}: not a path: {}", what, e.what());
  }
  const std::string path = text.cast<std::string>();
  if (path.empty()) input_error("{}: the path is empty", what);
  refuse_nul(path, what);
  return std::filesystem::path(path);
}

std::filesystem::path file_arg(const py::handle& obj, const std::string& what) {
  std::filesystem::path path = path_arg(obj, what);
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) input_error("{}: {} is a directory, not a file", what, path.string());
  return path;
}

std::optional<std::filesystem::path> optional_file_arg(const py::handle& obj, const std::string& what) {
  if (obj.is_none()) return std::nullopt;
  return file_arg(obj, what);
}

std::optional<std::filesystem::path> optional_path_arg(const py::handle& obj, const std::string& what) {
  if (obj.is_none()) return std::nullopt;
  return path_arg(obj, what);
}

std::vector<std::string> str_list_arg(const py::handle& obj, const std::string& what) {
  if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj))
    type_error("{}: expected a list of str, got {}", what, type_name(obj));
  std::vector<std::string> out;
  size_t i = 0;
  for (const py::handle item : obj) out.push_back(str_arg(item, fmt::format("{}[{}]", what, i++)));
  return out;
}

nlohmann::json json_dict_arg(const py::handle& obj, const std::string& what) {
  if (!py::isinstance<py::dict>(obj)) input_error("{}: expected a dict, got {}", what, type_name(obj));
  std::string text;
  try {
    text = py::module_::import("json").attr("dumps")(obj, py::arg("allow_nan") = false).cast<std::string>();
  } catch (py::error_already_set& e) {
    if (!caller_error(e)) throw;
    input_error("{}: not JSON ({}: {})", what, py::str(e.type().attr("__name__")).cast<std::string>(),
                py::str(e.value()).cast<std::string>());
  }
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    input_error("{}: not JSON: {}", what, e.what());
  }
}

std::string index_str(int64_t flat, const Shape& shape) {
  std::string out = "[";
  std::vector<int64_t> at(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    at[d] = shape[d] > 0 ? flat % shape[d] : 0;
    flat = shape[d] > 0 ? flat / shape[d] : 0;
  }
  for (size_t d = 0; d < at.size(); ++d) out += (d ? ", " : "") + std::to_string(at[d]);
  return out + "]";
}

}  // namespace parity::python
