// Helpers both families' backward files share (olmoe_backward.cpp, gemma4_backward.cpp,
// gemma4_layer_backward.cpp).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>

#include "model.h"
#include "ops/experts.h"

namespace parity::backward {

inline const Numerics kExact(Precision::F64);  // every backward computes the exact math

// The output gradient a module's backward starts from, of exactly the forward tensor's shape; a
// module nothing downstream read has nothing to differentiate, which the caller must hear about.
inline Array output_grad(const GradInputs& grads, const std::string& key, const Shape& shape) {
  std::optional<Array> g = grads.grad(key);
  PARITY_CHECK(g.has_value(), "[backward] no gradient of {}'s output: nothing downstream of it was differentiated", key);
  PARITY_CHECK(g->shape == shape, "[backward] gradient of {} is {}, the tensor {}", key, shape_str(g->shape),
               shape_str(shape));
  return std::move(*g);
}

// `shape` with its last dim replaced: a linear's output shape from its input's.
inline Shape with_last(Shape shape, int64_t last) {
  PARITY_CHECK(!shape.empty(), "[backward] a 0-d input where [..., features] is needed");
  shape.back() = last;
  return shape;
}

// into += add (same shape, checked).
void accumulate(Array& into, const Array& add);

// A parameter's gradient accumulator in `params`, created as zeros of `shape`.
Array& param_grad(std::map<std::string, Array>& params, const std::string& name, const Shape& shape);

// The experts' weighted combine (ops::experts_backward) of one layer, whose parameters are
// `prefix` + "gate_up_proj" / "down_proj": returns d x, sets d routing weights, adds the experts'
// gradients to `params`.
Array experts_backward(const std::string& prefix, const ops::ExpertWeights& w, ops::Activation activation,
                       const Array& x, const IndexArray& index, const Array& weights, const Array& dy, Array& dweights,
                       std::map<std::string, Array>& params);

// d loss / d logprobs [B, S - 1] of `loss` (model.h Loss) and the loss itself, from the
// reference's next-token logprobs; checks the loss inputs against the batch.
std::pair<Array, double> loss_gradient(const Loss& loss, const Array& logprobs, const IndexArray& input_ids);

}  // namespace parity::backward
