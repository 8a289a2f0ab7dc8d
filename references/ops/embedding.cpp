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

void embedding_backward(const IndexArray& ids, const Array& dy, Array& dtable, std::optional<int64_t> padding_idx) {
  PARITY_CHECK(dtable.shape.size() == 2 && dy.rows() == ids.numel() && dy.last_dim() == dtable.shape[1],
               "[embedding backward] output gradient {} does not fit {} ids and table {}", shape_str(dy.shape),
               ids.numel(), shape_str(dtable.shape));
  const int64_t vocab = dtable.shape[0], hidden = dtable.shape[1];
  for (int64_t t = 0; t < ids.numel(); ++t) {
    const int64_t id = ids.data[static_cast<size_t>(t)];
    PARITY_CHECK(id >= 0 && id < vocab, "[embedding backward] token id {} at flat position {} outside 0..{}", id, t,
                 vocab - 1);
    if (id == padding_idx) continue;
    double* row = dtable.data.data() + id * hidden;
    for (int64_t i = 0; i < hidden; ++i) row[i] += dy.row(t)[i];
  }
}

}  // namespace parity::ops
