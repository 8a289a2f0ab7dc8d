// Token embedding lookup (nn.Embedding): row ids[b, s] of the [V, H] table.
#pragma once

#include "array.h"

namespace parity::ops {

// ids [B, S] -> [B, S, H]; throws naming the first id outside 0..V-1.
Array embedding(const IndexArray& ids, const Weight& table);

}  // namespace parity::ops
