#include "io/tensor.h"

#include "error.h"

namespace parity {

std::vector<double> Tensor::to_f64() const {
  PARITY_CHECK(is_floating(dtype), "[tensor] to_f64 needs a float tensor, got {}", dtype_name(dtype));
  if (const auto* f = std::get_if<std::vector<float>>(&values)) return {f->begin(), f->end()};
  return std::get<std::vector<double>>(values);
}

const std::vector<int64_t>& Tensor::ints() const {
  PARITY_CHECK(!is_floating(dtype), "[tensor] ints needs an integer tensor, got {}", dtype_name(dtype));
  return std::get<std::vector<int64_t>>(values);
}

}  // namespace parity
