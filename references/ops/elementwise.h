// The elementwise tensor ops HF writes inline in forward() (residual adds, gating products,
// Python-float scales), each rounded once to the activation dtype T as torch rounds them.
// Scalars are Python floats: torch converts them to float32 against a float tensor, so f32(s).
#pragma once

#include <string_view>

#include "array.h"
#include "numerics.h"

namespace parity::ops {

// a + b and a ⊙ b, same shapes (throws naming `what` otherwise).
Array add(const Array& a, const Array& b, const Numerics& numerics, std::string_view what = "add");
Array multiply(const Array& a, const Array& b, const Numerics& numerics, std::string_view what = "multiply");
// a ⊙ w with w broadcast over the last dim (a [..., n], w [n]): a norm-free learned scale.
Array multiply_last_dim(const Array& a, const Weight& w, const Numerics& numerics, std::string_view what = "scale");
// a · s for a Python float s.
Array scale(const Array& a, double s, const Numerics& numerics);

// Backwards at the exact math. add passes dy to both operands and multiply sends dy ⊙ b to a and
// dy ⊙ a to b (no function needed); these two have a weight or a converted scalar:
// multiply_last_dim: returns da = dy ⊙ w and adds Σ_rows dy ⊙ a to `dweight` ([n], when given).
Array multiply_last_dim_backward(const Array& a, const Weight& w, const Array& dy, Array* dweight,
                                 std::string_view what = "scale");
// scale: da = dy · f32(s), the float32 value torch multiplied by.
Array scale_backward(const Array& dy, double s, const Numerics& numerics);

}  // namespace parity::ops
