#include "linear.h"

#include <algorithm>
#include <vector>

#include <cblas.h>

namespace parity::ops {

namespace {

// An engine's float matmul (Accumulation::kFloat): the operands as float (exact for values already
// rounded at a float or bf16 cast point), sgemm accumulating in float, widened back.
std::vector<float> to_float(const double* a, int64_t lda, int64_t rows, int64_t cols) {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out[static_cast<size_t>(r * cols + c)] = static_cast<float>(a[r * lda + c]);
  return out;
}

void sgemm_into(bool transpose_b, const std::vector<float>& a, const float* b, int64_t m, int64_t n, int64_t k,
                double* y, int64_t ldy) {
  std::vector<float> out(static_cast<size_t>(m * n));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, transpose_b ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), 1.0f, a.data(), static_cast<int>(k), b,
              static_cast<int>(transpose_b ? k : n), 0.0f, out.data(), static_cast<int>(n));
  for (int64_t r = 0; r < m; ++r)
    for (int64_t c = 0; c < n; ++c) y[r * ldy + c] = out[static_cast<size_t>(r * n + c)];
}

}  // namespace

void matmul_xwt(const double* x, int64_t rows, int64_t in, const float* w, int64_t out, double* y,
                const Numerics& numerics) {
  if (rows == 0 || out == 0) return;
  if (numerics.float_sums()) return sgemm_into(true, to_float(x, in, rows, in), w, rows, out, in, y, out);
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
                int64_t n, int64_t k, const Numerics& numerics) {
  if (numerics.float_sums()) return sgemm_into(true, to_float(a, lda, m, k), to_float(b, ldb, n, k).data(), m, n, k, y, ldy);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
              1.0, a, static_cast<int>(lda), b, static_cast<int>(ldb), 0.0, y, static_cast<int>(ldy));
}

void matmul_ab(const double* a, int64_t lda, const double* b, int64_t ldb, double* y, int64_t ldy, int64_t m,
               int64_t n, int64_t k, const Numerics& numerics) {
  if (numerics.float_sums()) return sgemm_into(false, to_float(a, lda, m, k), to_float(b, ldb, k, n).data(), m, n, k, y, ldy);
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
  matmul_xwt(x.data.data(), x.rows(), in, weight.data.data(), out, y.data.data(), numerics);
  numerics.act_sum(y, in);
  return y;
}

Array linear_backward(const Array& x, const Weight& weight, const Array& dy, Array* dweight, std::string_view name) {
  PARITY_CHECK(weight.shape.size() == 2, "[{} backward] weight must be [out, in], got {}", name, shape_str(weight.shape));
  const int64_t out = weight.shape[0], in = weight.shape[1];
  PARITY_CHECK(x.last_dim() == in && dy.last_dim() == out && x.rows() == dy.rows(),
               "[{} backward] input {} and output gradient {} do not fit weight [{}, {}]", name, shape_str(x.shape),
               shape_str(dy.shape), out, in);
  PARITY_CHECK(!dweight || dweight->shape == weight.shape, "[{} backward] weight gradient {} is not [{}, {}]", name,
               dweight ? shape_str(dweight->shape) : "", out, in);
  Array dx(x.shape);
  for (int64_t r = 0; r < x.rows(); ++r) {
    const double* g = dy.row(r);
    double* d = dx.row(r);
    for (int64_t o = 0; o < out; ++o) {
      if (g[o] == 0) continue;
      const float* w = weight.data.data() + o * in;
      for (int64_t i = 0; i < in; ++i) d[i] += g[o] * static_cast<double>(w[i]);
      if (dweight) {
        const double* xr = x.row(r);
        double* dw = dweight->data.data() + o * in;
        for (int64_t i = 0; i < in; ++i) dw[i] += g[o] * xr[i];
      }
    }
  }
  return dx;
}

}  // namespace parity::ops
