// Tensor: the values of one dataset as read from a fixture, a logprob run or a checkpoint, with its
// shape and the dtype HF produced it in. Only the harness reads files, so only it has Tensors; the
// reference computes on Arrays (references/array.h).
#pragma once

#include <cstdint>
#include <variant>
#include <vector>

#include "dtype.h"

namespace parity {

struct Tensor {
  DType dtype = DType::F32;  // what the producer computed in
  Shape shape;
  std::variant<std::vector<float>, std::vector<double>, std::vector<int64_t>> values;

  int64_t numel() const { return parity::numel(shape); }
  // Every element as double (exact for every float dtype); throws for integer dtypes.
  std::vector<double> to_f64() const;
  // Integer and bool values; throws for float dtypes.
  const std::vector<int64_t>& ints() const;
};

}  // namespace parity
