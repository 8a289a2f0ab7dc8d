// Linear layers as torch's F.linear computes them: y = x · Wᵀ, W stored [out, in] (nn.Linear).
// Products and sums run in f64 (BLAS dgemm; a product of two floats is exact in f64), then the
// output is rounded once at HF's cast point (numerics.act), as torch rounds a matmul's output.
#pragma once

#include "array.h"
#include "numerics.h"

namespace parity::ops {

// x [..., in], weight [out, in] -> [..., out]. Throws naming `name` when in != x's last dim.
Array linear(const Array& x, const Weight& weight, const Numerics& numerics, std::string_view name = "linear");

// The raw kernel: y[rows, out] = x[rows, in] · w[out, in]ᵀ, w in float (a weight slice, e.g. one
// expert of a fused [E, 2I, H] tensor). No rounding: callers apply their cast point. The three
// kernels accumulate in f64 (dgemm), or in float (sgemm on float copies) under numerics.float_sums().
void matmul_xwt(const double* x, int64_t rows, int64_t in, const float* w, int64_t out, double* y,
                const Numerics& numerics);

// y[m, n] = a[m, k] · b[n, k]ᵀ over row-strided f64 views (attention's Q·Kᵀ per head).
void matmul_abt(const double* a, int64_t lda, const double* b, int64_t ldb, double* y, int64_t ldy, int64_t m,
                int64_t n, int64_t k, const Numerics& numerics);
// y[m, n] = a[m, k] · b[k, n] over row-strided f64 views (attention's P·V per head).
void matmul_ab(const double* a, int64_t lda, const double* b, int64_t ldb, double* y, int64_t ldy, int64_t m,
               int64_t n, int64_t k, const Numerics& numerics);

// The backward of linear, exact in f64 (every backward of references/ops is): from dy [..., out],
// returns dx [..., in] = dy · W and adds dyᵀ · x to `dweight` ([out, in], when given: a weight
// several calls use sums their gradients).
Array linear_backward(const Array& x, const Weight& weight, const Array& dy, Array* dweight,
                      std::string_view name = "linear");

}  // namespace parity::ops
