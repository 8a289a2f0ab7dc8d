#include "linear.h"

#include <algorithm>

#include <cblas.h>

namespace parity::ops {

void matmul_xwt(const double* x, int64_t rows, int64_t in, const float* w, int64_t out, double* y) {
  if (rows == 0 || out == 0) return;
  // Widening the weight is exact; dgemm then accumulates in f64. The weight is widened a block of
  // output rows at a time into a buffer reused across calls: widening a whole expert matrix into a
  // fresh allocation cost more than the dgemm itself (page faults; ci/bench_olmoe_layer).
  constexpr int64_t kBlockElements = int64_t{1} << 18;  // 2 MiB of doubles: stays in L2/L3
  const int64_t block_rows = std::max<int64_t>(1, kBlockElements / std::max<int64_t>(in, 1));
  thread_local std::vector<double> w64;
  w64.resize(static_cast<size_t>(std::min(block_rows, out) * in));
  for (int64_t r0 = 0; r0 < out; r0 += block_rows) {
    const int64_t n = std::min(block_rows, out - r0);
    std::copy(w + r0 * in, w + (r0 + n) * in, w64.begin());
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(n),
                static_cast<int>(in), 1.0, x, static_cast<int>(in), w64.data(), static_cast<int>(in), 0.0, y + r0,
                static_cast<int>(out));
  }
}

void matmul_abt(const double* a, int64_t lda, const double* b, int64_t ldb, double* y, int64_t ldy, int64_t m,
                int64_t n, int64_t k) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
              1.0, a, static_cast<int>(lda), b, static_cast<int>(ldb), 0.0, y, static_cast<int>(ldy));
}

void matmul_ab(const double* a, int64_t lda, const double* b, int64_t ldb, double* y, int64_t ldy, int64_t m,
               int64_t n, int64_t k) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
              1.0, a, static_cast<int>(lda), b, static_cast<int>(ldb), 0.0, y, static_cast<int>(ldy));
}

Array linear(const Array& x, const Weight& weight, const Numerics& numerics, std::string_view name) {
  PARITY_CHECK(weight.shape.size() == 2, "[{}] weight must be [out, in], got {}", name, shape_str(weight.shape));
  const int64_t out = weight.shape[0], in = weight.shape[1];
  PARITY_CHECK(x.last_dim() == in && !x.shape.empty(), "[{}] input {} does not end in the weight's in-features {}",
               name, shape_str(x.shape), in);
  Shape shape = x.shape;
  shape.back() = out;
  Array y(shape);
  matmul_xwt(x.data.data(), x.rows(), in, weight.data.data(), out, y.data.data());
  numerics.act(y);
  return y;
}

}  // namespace parity::ops
