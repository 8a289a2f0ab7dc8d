// numpy <-> the harness's containers, with every conversion explicit: float32 and float64 arrays
// are read as doubles (float64 C-contiguous arrays in place where the callee takes a span),
// integer arrays as int64; any other dtype is refused with a TypeError naming the argument, and so
// is anything numpy cannot read (a torch bfloat16, CUDA or grad-requiring tensor, with the call
// that converts it; a masked array with masked elements). Nothing is ever reinterpreted.
// Every function here runs with the GIL held.
#pragma once

#include <span>
#include <string>
#include <vector>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "array.h"
#include "io/tensor.h"

namespace parity::python {

namespace py = pybind11;

// A float array as a C-contiguous float64 array: the same object when it already is one (no copy),
// else a converted copy of a float32/float64 array. TypeError for any other dtype.
py::array_t<double, py::array::c_style> as_f64(const py::handle& obj, const std::string& what);
// A float32 array (exactly: a weight in float64 would be rounded), C-contiguous. TypeError otherwise.
py::array_t<float, py::array::c_style> as_f32(const py::handle& obj, const std::string& what);
// An integer array as C-contiguous int64. TypeError for float and other dtypes, and for bool unless
// `bools` (masks); InputError for a uint64 value beyond int64, naming it and its position.
enum class Bools { kRefuse, kAllow };
py::array_t<int64_t, py::array::c_style> as_i64(const py::handle& obj, const std::string& what,
                                                Bools bools = Bools::kRefuse);
// Any array-like as a numpy array (no dtype check), or the TypeError as_f64 / as_i64 raise.
py::array as_numpy(const py::handle& obj, const std::string& what);

inline std::span<const double> span_of(const py::array_t<double, py::array::c_style>& a) {
  return {a.data(), static_cast<size_t>(a.size())};
}

Shape shape_of(const py::array& a);
Array to_array(const py::handle& obj, const std::string& what);
IndexArray to_index_array(const py::handle& obj, const std::string& what, Bools bools = Bools::kRefuse);

// Results handed to Python without a copy: the vector moves into the array's owner.
py::array_t<double> to_numpy(Array&& a);
py::array_t<int64_t> to_numpy(IndexArray&& a);
py::array to_numpy(Tensor&& t);  // float tensors as float32 (bf16 widened exactly) or float64; ints as int64

}  // namespace parity::python
