#include "array.h"

namespace parity {

Array reshaped(Array a, Shape shape) {
  PARITY_CHECK(parity::numel(shape) == a.numel(), "[array] cannot view {} as {}", shape_str(a.shape),
               shape_str(shape));
  a.shape = std::move(shape);
  return a;
}

}  // namespace parity
