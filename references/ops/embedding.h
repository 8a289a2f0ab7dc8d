// Token embedding lookup (nn.Embedding): row ids[b, s] of the [V, H] table.
#pragma once

#include <optional>

#include "array.h"

namespace parity::ops {

// ids [B, S] -> [B, S, H]; throws naming the first id outside 0..V-1.
Array embedding(const IndexArray& ids, const Weight& table);

// The backward of embedding: adds each token's output gradient dy [B, S, H] to its row of
// `dtable` [V, H] (a token that occurs twice adds twice). Token ids carry no gradient, and neither
// does the row of `padding_idx` (nn.Embedding(padding_idx=...): torch skips it in the backward).
void embedding_backward(const IndexArray& ids, const Array& dy, Array& dtable,
                        std::optional<int64_t> padding_idx = std::nullopt);

}  // namespace parity::ops
