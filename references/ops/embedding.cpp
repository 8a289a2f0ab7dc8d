#include "embedding.h"

#include <algorithm>

namespace parity::ops {

Array embedding(const IndexArray& ids, const Weight& table) {
  PARITY_CHECK(table.shape.size() == 2, "[embedding] table must be [V, H], got {}", shape_str(table.shape));
  const int64_t vocab = table.shape[0], hidden = table.shape[1];
  Shape shape = ids.shape;
  shape.push_back(hidden);
  Array out(shape);
  for (int64_t t = 0; t < ids.numel(); ++t) {
    const int64_t id = ids.data[static_cast<size_t>(t)];
    PARITY_CHECK(id >= 0 && id < vocab, "[embedding] token id {} at flat position {} outside 0..{}", id, t, vocab - 1);
    std::copy_n(table.data.data() + id * hidden, hidden, out.row(t));
  }
  return out;
}

}  // namespace parity::ops
