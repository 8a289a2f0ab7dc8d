#include "weights.h"

namespace parity {

Weight expect_weight(const WeightSource& source, const std::string& name, const Shape& shape) {
  Weight w = source.get(name);
  PARITY_CHECK(w.shape == shape, "[weights] {} has shape {}, the config implies {}", name, shape_str(w.shape),
               shape_str(shape));
  return w;
}

}  // namespace parity
