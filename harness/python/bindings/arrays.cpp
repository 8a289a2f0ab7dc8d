#include "arrays.h"

#include <limits>

#include <fmt/format.h>

#include "args.h"

namespace parity::python {

namespace {

std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

// Why numpy could not read a torch tensor, as the call that fixes it: "a torch.bfloat16 tensor on
// cuda:0 ... convert it with .cpu().float() first". Empty when the tensor explains nothing.
std::string torch_hint(const py::handle& obj, const std::string& what) {
  try {
    const std::string dtype = py::str(obj.attr("dtype"));
    const std::string device = py::str(obj.attr("device"));
    const bool grad = obj.attr("requires_grad").cast<bool>();
    const bool floating = obj.attr("dtype").attr("is_floating_point").cast<bool>();
    std::string fix;
    if (grad) fix += ".detach()";
    if (device != "cpu") fix += ".cpu()";
    if (floating && dtype != "torch.float32" && dtype != "torch.float64" && dtype != "torch.float16") fix += ".float()";
    if (fix.empty()) return "";
    return fmt::format("{}: cannot read a {} tensor{}{} as an array: convert it with {} first", what, dtype,
                       device != "cpu" ? " on " + device : "", grad ? " that requires grad" : "", fix);
  } catch (py::error_already_set&) {
    return "";
  }
}

// A numpy array with no element hidden: a masked array's masked elements hold whatever was there.
void refuse_masked(const py::handle& obj, const std::string& what) {
  const py::dict modules = py::module_::import("sys").attr("modules");
  if (!modules.contains("numpy.ma")) return;  // nothing can be a MaskedArray yet
  const py::module_ ma = modules["numpy.ma"];
  if (!py::isinstance(obj, ma.attr("MaskedArray"))) return;
  const int64_t masked = ma.attr("count_masked")(obj).cast<int64_t>();
  if (masked > 0)
    type_error("{}: a masked array with {} masked element(s): fill them (a.filled(value)) or drop them first", what,
               masked);
}

// The aligned, C-contiguous array of T numpy converts `a` to (a's own buffer when it already is one).
template <typename T>
py::array_t<T, py::array::c_style> contiguous(const py::array& a, const std::string& what) {
  auto out = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(a);
  if (!out) {
    PyErr_Clear();
    type_error("{}: numpy cannot convert {} to {}", what, dtype_str(a), py::str(py::dtype::of<T>()).cast<std::string>());
  }
  // Unaligned data (np.frombuffer at an odd offset) is copied: the C++ side reads T* directly.
  if (!(out.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
    out = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(out.attr("copy")());
  return out;
}

template <typename T>
py::array_t<T, py::array::c_style> owned(std::vector<T>&& values, const Shape& shape) {
  auto* heap = new std::vector<T>(std::move(values));
  py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T, py::array::c_style>(std::vector<py::ssize_t>(shape.begin(), shape.end()), heap->data(), owner);
}

}  // namespace

py::array as_numpy(const py::handle& obj, const std::string& what) {
  // torch tensors and other array-likes go through __array__ (zero-copy for CPU tensors); lists and
  // scalars are refused: an explicit np.asarray says which dtype the caller meant.
  if (!py::isinstance<py::array>(obj) && !py::hasattr(obj, "__array__"))
    type_error("{}: expected a numpy array or tensor, got {}", what,
               py::str(reinterpret_cast<PyObject*>(Py_TYPE(obj.ptr()))).cast<std::string>());
  refuse_masked(obj, what);
  if (py::isinstance<py::array>(obj)) return py::reinterpret_borrow<py::array>(obj);
  py::object a;
  try {
    a = py::module_::import("numpy").attr("asarray")(obj);
  } catch (py::error_already_set& e) {
    if (!caller_error(e)) throw;
    const std::string type = type_name(obj);
    if (type.starts_with("torch.")) {
      if (std::string hint = torch_hint(obj, what); !hint.empty()) type_error("{}", hint);
    }
    type_error("{}: cannot read a {} as an array: {}", what, type, py::str(e.value()).cast<std::string>());
  }
  if (!py::isinstance<py::array>(a))
    type_error("{}: __array__ of {} returned a {}, not a numpy array", what, type_name(obj), type_name(a));
  return py::reinterpret_borrow<py::array>(a);
}

py::array_t<double, py::array::c_style> as_f64(const py::handle& obj, const std::string& what) {
  const py::array a = as_numpy(obj, what);
  const char kind = a.dtype().kind();
  if (kind != 'f' || (a.itemsize() != 4 && a.itemsize() != 8))
    type_error("{}: expected float32 or float64, got {} (convert it explicitly)", what, dtype_str(a));
  return contiguous<double>(a, what);  // the same array when already float64 C-contiguous
}

py::array_t<float, py::array::c_style> as_f32(const py::handle& obj, const std::string& what) {
  const py::array a = as_numpy(obj, what);
  if (a.dtype().kind() != 'f' || a.itemsize() != 4)
    type_error("{}: expected float32 (widen bfloat16 with .float()), got {}", what, dtype_str(a));
  return contiguous<float>(a, what);
}

py::array_t<int64_t, py::array::c_style> as_i64(const py::handle& obj, const std::string& what, Bools bools) {
  const py::array a = as_numpy(obj, what);
  const char kind = a.dtype().kind();
  if (kind == 'b' && bools == Bools::kRefuse) type_error("{}: expected an integer array, got bool", what);
  if (kind != 'i' && kind != 'u' && kind != 'b')
    type_error("{}: expected an integer array, got {}", what, dtype_str(a));
  if (kind == 'u' && a.itemsize() == 8) {  // the one integer dtype whose values int64 may not hold
    const auto u = contiguous<uint64_t>(a, what);
    for (py::ssize_t i = 0; i < u.size(); ++i)
      if (u.data()[i] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        input_error("{}: {} at {} does not fit int64", what, u.data()[i], index_str(i, shape_of(u)));
  }
  return contiguous<int64_t>(a, what);
}

Shape shape_of(const py::array& a) { return Shape(a.shape(), a.shape() + a.ndim()); }

Array to_array(const py::handle& obj, const std::string& what) {
  const auto a = as_f64(obj, what);
  return Array(shape_of(a), std::vector<double>(a.data(), a.data() + a.size()));
}

IndexArray to_index_array(const py::handle& obj, const std::string& what, Bools bools) {
  const auto a = as_i64(obj, what, bools);
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
