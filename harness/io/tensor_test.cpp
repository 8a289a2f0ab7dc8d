#include "io/tensor.h"

#include <cmath>
#include <limits>

#include <doctest/doctest.h>

#include "error.h"

namespace parity {

TEST_CASE("tensor: numel, shape_str and typed access") {
  Tensor t{DType::BF16, {2, 3}, std::vector<float>{1, 2, 3, 4, 5, 6}};
  CHECK(t.numel() == 6);
  CHECK(shape_str(t.shape) == "[2, 3]");
  CHECK(t.to_f64()[5] == 6.0);
  CHECK_THROWS_AS(t.ints(), Error);
  Tensor ids{DType::I64, {2}, std::vector<int64_t>{7, 8}};
  CHECK(ids.ints()[1] == 8);
  CHECK_THROWS_AS(ids.to_f64(), Error);
  CHECK(numel({}) == 1);  // a scalar holds one element
}

}  // namespace parity
