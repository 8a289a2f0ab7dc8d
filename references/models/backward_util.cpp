#include "backward_util.h"

#include <cmath>

namespace parity::backward {

void accumulate(Array& into, const Array& add) {
  PARITY_CHECK(into.shape == add.shape, "[backward] adding a {} gradient to a {} one", shape_str(add.shape),
               shape_str(into.shape));
  for (int64_t i = 0; i < into.numel(); ++i) into.data[i] += add.data[i];
}

Array& param_grad(std::map<std::string, Array>& params, const std::string& name, const Shape& shape) {
  auto it = params.find(name);
  if (it == params.end()) it = params.emplace(name, Array(shape)).first;
  return it->second;
}

Array experts_backward(const std::string& prefix, const ops::ExpertWeights& w, ops::Activation activation,
                       const Array& x, const IndexArray& index, const Array& weights, const Array& dy, Array& dweights,
                       std::map<std::string, Array>& params) {
  ops::ExpertGradients g = ops::experts_backward(x, index, weights, w, activation, dy);
  accumulate(param_grad(params, prefix + "gate_up_proj", g.gate_up_proj.shape), g.gate_up_proj);
  accumulate(param_grad(params, prefix + "down_proj", g.down_proj.shape), g.down_proj);
  dweights = std::move(g.weights);
  return std::move(g.x);
}

// d loss / d logprobs [B, S - 1] for `loss`, and the loss itself from the logprobs.
std::pair<Array, double> loss_gradient(const Loss& loss, const Array& logprobs, const IndexArray& input_ids) {
  Array d(logprobs.shape);
  double value = 0;
  if (loss.kind == Loss::Kind::kLogprobSum) {
    PARITY_CHECK(loss.weights.shape == logprobs.shape, "[backward] loss weights {} are not [B, S - 1] = {}",
                 shape_str(loss.weights.shape), shape_str(logprobs.shape));
    for (int64_t i = 0; i < d.numel(); ++i) value += (d.data[i] = loss.weights.data[i]) * logprobs.data[i];
    PARITY_CHECK(std::isfinite(value), "[backward] the logprob_sum loss is {}: the loss weights overflow it", value);
    return {d, value};
  }
  const int64_t batch = logprobs.shape[0], scored = logprobs.shape[1];
  PARITY_CHECK(loss.labels.shape == (Shape{batch, scored + 1}), "[backward] labels {} are not [B, S]",
               shape_str(loss.labels.shape));
  // ce_mean scores the next input id wherever a label is kept (HF's labels = input_ids, -100 masked).
  for (int64_t i = 0; i < loss.labels.numel(); ++i)
    PARITY_CHECK(loss.labels.data[i] == -100 || loss.labels.data[i] == input_ids.data[i],
                 "[backward] label {} at flat position {} is not the input id {} there (labels are input_ids with -100 "
                 "where ignored)", loss.labels.data[i], i, input_ids.data[i]);
  int64_t count = 0;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t s = 0; s < scored; ++s) count += loss.labels.data[static_cast<size_t>(b * (scored + 1) + s + 1)] != -100;
  PARITY_CHECK(count > 0, "[backward] ce_mean over no label: every label is -100");
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t s = 0; s < scored; ++s)
      if (loss.labels.data[static_cast<size_t>(b * (scored + 1) + s + 1)] != -100) {
        d.data[static_cast<size_t>(b * scored + s)] = -1.0 / static_cast<double>(count);
        value -= logprobs.data[static_cast<size_t>(b * scored + s)] / static_cast<double>(count);
      }
  return {d, value};
}

}  // namespace parity::backward
