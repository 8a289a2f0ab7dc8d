// WeightSource: where a model's weights come from, by their HF state_dict names
// ("model.layers.0.self_attn.q_proj.weight"). The harness implements it over a fixture's
// /weights group and over a local safetensors checkpoint; models ask for one tensor at a time,
// so a layer's weights can be read, used and dropped.
#pragma once

#include <string>

#include "array.h"

namespace parity {

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual bool has(const std::string& name) const = 0;
  // Throws parity::Error naming the weight when absent or not a float tensor.
  virtual Weight get(const std::string& name) const = 0;
};

// get() plus a shape check: a checkpoint of another model size fails here, naming the weight.
Weight expect_weight(const WeightSource& source, const std::string& name, const Shape& shape);

}  // namespace parity
