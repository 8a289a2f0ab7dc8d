#include "elementwise.h"

namespace parity::ops {

namespace {

void check_same_shape(const Array& a, const Array& b, std::string_view what) {
  PARITY_CHECK(a.shape == b.shape, "[{}] operands {} and {} differ in shape", what, shape_str(a.shape),
               shape_str(b.shape));
}

}  // namespace

Array add(const Array& a, const Array& b, const Numerics& numerics, std::string_view what) {
  check_same_shape(a, b, what);
  Array out(a.shape);
  for (int64_t i = 0; i < a.numel(); ++i) out.data[i] = numerics.act(a.data[i] + b.data[i]);
  return out;
}

Array multiply(const Array& a, const Array& b, const Numerics& numerics, std::string_view what) {
  check_same_shape(a, b, what);
  Array out(a.shape);
  for (int64_t i = 0; i < a.numel(); ++i) out.data[i] = numerics.act(a.data[i] * b.data[i]);
  return out;
}

Array multiply_last_dim(const Array& a, const Weight& w, const Numerics& numerics, std::string_view what) {
  PARITY_CHECK(w.shape == Shape{a.last_dim()}, "[{}] scale {} does not match the last dim of {}", what,
               shape_str(w.shape), shape_str(a.shape));
  Array out(a.shape);
  for (int64_t r = 0; r < a.rows(); ++r)
    for (int64_t i = 0; i < a.last_dim(); ++i) out.row(r)[i] = numerics.act(a.row(r)[i] * w.data[i]);
  return out;
}

Array scale(const Array& a, double s, const Numerics& numerics) {
  const double s32 = numerics.f32(s);
  Array out(a.shape);
  for (int64_t i = 0; i < a.numel(); ++i) out.data[i] = numerics.act(a.data[i] * s32);
  return out;
}

Array multiply_last_dim_backward(const Array& a, const Weight& w, const Array& dy, Array* dweight, std::string_view what) {
  PARITY_CHECK(w.shape == Shape{a.last_dim()} && dy.shape == a.shape && (!dweight || dweight->shape == w.shape),
               "[{} backward] scale {}, input {} and output gradient {} do not fit", what, shape_str(w.shape),
               shape_str(a.shape), shape_str(dy.shape));
  Array da(a.shape);
  for (int64_t r = 0; r < a.rows(); ++r)
    for (int64_t i = 0; i < a.last_dim(); ++i) {
      da.row(r)[i] = dy.row(r)[i] * static_cast<double>(w.data[i]);
      if (dweight) dweight->data[i] += dy.row(r)[i] * a.row(r)[i];
    }
  return da;
}

Array scale_backward(const Array& dy, double s, const Numerics& numerics) {
  const double s32 = numerics.f32(s);
  Array da(dy.shape);
  for (int64_t i = 0; i < dy.numel(); ++i) da.data[i] = dy.data[i] * s32;
  return da;
}

}  // namespace parity::ops
