// Array, IndexArray and Weight: the reference's working types. Activations are f64 whose values
// are whatever the chosen Precision leaves after HF's cast points (numerics.h); weights keep the
// checkpoint's values as float (exact for f32, bf16 and f16). Row-major, contiguous, no strides.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "error.h"
#include "dtype.h"

namespace parity {

struct Array {
  Shape shape;
  std::vector<double> data;

  Array() = default;
  explicit Array(Shape s) : shape(std::move(s)), data(static_cast<size_t>(parity::numel(shape)), 0.0) {}
  Array(Shape s, std::vector<double> d) : shape(std::move(s)), data(std::move(d)) {
    PARITY_CHECK(static_cast<int64_t>(data.size()) == parity::numel(shape), "[array] {} values for shape {}",
                 data.size(), shape_str(shape));
  }
  int64_t numel() const { return static_cast<int64_t>(data.size()); }
  int64_t last_dim() const { return shape.empty() ? 1 : shape.back(); }
  int64_t rows() const { return last_dim() == 0 ? 0 : numel() / last_dim(); }  // all but the last dim
  double* row(int64_t r) { return data.data() + r * last_dim(); }
  const double* row(int64_t r) const { return data.data() + r * last_dim(); }
};

// Integer tensors: token ids, positions, top-k expert indices.
struct IndexArray {
  Shape shape;
  std::vector<int64_t> data;
  int64_t numel() const { return static_cast<int64_t>(data.size()); }
};

struct Weight {
  Shape shape;
  std::vector<float> data;
  int64_t numel() const { return static_cast<int64_t>(data.size()); }
};

// Same values, new shape (a view in torch); throws when the element counts differ.
Array reshaped(Array a, Shape shape);

}  // namespace parity
