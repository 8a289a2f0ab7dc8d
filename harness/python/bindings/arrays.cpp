#include "arrays.h"

#include <fmt/format.h>

namespace parity::python {

namespace {

std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

py::array as_array(const py::handle& obj, const std::string& what) {
  // torch tensors and other array-likes go through __array__ (zero-copy for CPU tensors).
  if (!py::isinstance<py::array>(obj) && !py::hasattr(obj, "__array__"))
    throw py::type_error(fmt::format("{}: expected a numpy array or tensor, got {}", what,
                                     py::str(py::type::of(obj)).cast<std::string>()));
  return py::array::ensure(obj);
}

template <typename T>
py::array_t<T, py::array::c_style> owned(std::vector<T>&& values, const Shape& shape) {
  auto* heap = new std::vector<T>(std::move(values));
  py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T, py::array::c_style>(std::vector<py::ssize_t>(shape.begin(), shape.end()), heap->data(), owner);
}

}  // namespace

py::array_t<double, py::array::c_style> as_f64(const py::handle& obj, const std::string& what) {
  const py::array a = as_array(obj, what);
  const char kind = a.dtype().kind();
  if (kind != 'f' || (a.itemsize() != 4 && a.itemsize() != 8))
    throw py::type_error(fmt::format("{}: expected float32 or float64, got {} (convert it explicitly)", what, dtype_str(a)));
  return py::array_t<double, py::array::c_style>::ensure(a);  // the same array when already float64 C-contiguous
}

py::array_t<int64_t, py::array::c_style> as_i64(const py::handle& obj, const std::string& what) {
  const py::array a = as_array(obj, what);
  const char kind = a.dtype().kind();
  if (kind != 'i' && kind != 'u' && kind != 'b')
    throw py::type_error(fmt::format("{}: expected an integer array, got {}", what, dtype_str(a)));
  return py::array_t<int64_t, py::array::c_style>::ensure(a);
}

Shape shape_of(const py::array& a) { return Shape(a.shape(), a.shape() + a.ndim()); }

Array to_array(const py::handle& obj, const std::string& what) {
  const auto a = as_f64(obj, what);
  return Array(shape_of(a), std::vector<double>(a.data(), a.data() + a.size()));
}

IndexArray to_index_array(const py::handle& obj, const std::string& what) {
  const auto a = as_i64(obj, what);
  return IndexArray{shape_of(a), std::vector<int64_t>(a.data(), a.data() + a.size())};
}

py::array_t<double> to_numpy(Array&& a) { return owned(std::move(a.data), a.shape); }
py::array_t<int64_t> to_numpy(IndexArray&& a) { return owned(std::move(a.data), a.shape); }

py::array to_numpy(Tensor&& t) {
  if (auto* f = std::get_if<std::vector<float>>(&t.values)) return owned(std::move(*f), t.shape);
  if (auto* d = std::get_if<std::vector<double>>(&t.values)) return owned(std::move(*d), t.shape);
  return owned(std::move(std::get<std::vector<int64_t>>(t.values)), t.shape);
}

}  // namespace parity::python
