#include "experts.h"

#include <algorithm>

#include "linear.h"

namespace parity::ops {

namespace {

struct Dims {
  int64_t experts, inter, hidden;
};

Dims check_shapes(const Array& x, const IndexArray& index, const Array& weights, const ExpertWeights& w) {
  PARITY_CHECK(w.gate_up_proj.shape.size() == 3 && w.down_proj.shape.size() == 3 && w.gate_up_proj.shape[1] % 2 == 0,
               "[experts] want gate_up_proj [E, 2I, H] and down_proj [E, H, I], got {} and {}",
               shape_str(w.gate_up_proj.shape), shape_str(w.down_proj.shape));
  const Dims d{w.gate_up_proj.shape[0], w.gate_up_proj.shape[1] / 2, w.gate_up_proj.shape[2]};
  PARITY_CHECK(w.down_proj.shape == (Shape{d.experts, d.hidden, d.inter}),
               "[experts] down_proj {} does not fit gate_up_proj {}", shape_str(w.down_proj.shape),
               shape_str(w.gate_up_proj.shape));
  PARITY_CHECK(x.shape.size() == 2 && x.shape[1] == d.hidden, "[experts] input {} is not [T, {}]", shape_str(x.shape),
               d.hidden);
  PARITY_CHECK(index.shape.size() == 2 && index.shape[0] == x.shape[0] && weights.shape == index.shape,
               "[experts] top-k index {} and weights {} do not fit input {}", shape_str(index.shape),
               shape_str(weights.shape), shape_str(x.shape));
  for (int64_t e : index.data)
    PARITY_CHECK(e >= 0 && e < d.experts, "[experts] expert index {} outside 0..{}", e, d.experts - 1);
  return d;
}

// One expert on the rows routed to it: [n, H] -> [n, H], before the routing weight.
Array run_expert(const Array& rows, int64_t e, const Dims& d, const ExpertWeights& w, Activation activation,
                 const Numerics& numerics) {
  const int64_t n = rows.rows();
  Array gate_up({n, 2 * d.inter});
  matmul_xwt(rows.data.data(), n, d.hidden, w.gate_up_proj.data.data() + e * 2 * d.inter * d.hidden, 2 * d.inter,
             gate_up.data.data(), numerics);
  numerics.act_sum(gate_up, d.hidden);
  Array hidden({n, d.inter});
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < d.inter; ++i) {
      const double gate = gate_up.row(r)[i], up = gate_up.row(r)[d.inter + i];  // chunk(2): gate first
      hidden.row(r)[i] = numerics.act(activate(activation, gate, numerics) * up);
    }
  Array out({n, d.hidden});
  matmul_xwt(hidden.data.data(), n, d.inter, w.down_proj.data.data() + e * d.hidden * d.inter, d.hidden,
             out.data.data(), numerics);
  numerics.act_sum(out, d.inter);
  return out;
}

}  // namespace

Array experts(const Array& x, const IndexArray& index, const Array& weights, const ExpertWeights& w,
              Activation activation, const Numerics& numerics) {
  const Dims d = check_shapes(x, index, weights, w);
  const int64_t tokens = x.shape[0], k = index.shape[1];
  Array out({tokens, d.hidden});
  for (int64_t e = 0; e < d.experts; ++e) {
    // torch.where over the [K, T] expert mask: slot-major, then token order.
    std::vector<std::pair<int64_t, int64_t>> routed;  // (token, slot)
    for (int64_t j = 0; j < k; ++j)
      for (int64_t t = 0; t < tokens; ++t)
        if (index.data[static_cast<size_t>(t * k + j)] == e) routed.emplace_back(t, j);
    if (routed.empty()) continue;
    Array rows({static_cast<int64_t>(routed.size()), d.hidden});
    for (size_t r = 0; r < routed.size(); ++r)
      std::copy_n(x.row(routed[r].first), d.hidden, rows.row(static_cast<int64_t>(r)));
    const Array y = run_expert(rows, e, d, w, activation, numerics);
    for (size_t r = 0; r < routed.size(); ++r) {
      const auto [t, j] = routed[r];
      const double weight = weights.row(t)[j];
      // y (dtype T) times the weight: OLMoE's weight is T, Gemma-4's float32 (per_expert_scale
      // promotes it), so torch forms the product in float32 and .to(T) rounds it once more.
      for (int64_t h = 0; h < d.hidden; ++h)
        out.row(t)[h] =
            numerics.act(out.row(t)[h] + numerics.act(numerics.f32(y.row(static_cast<int64_t>(r))[h] * weight)));
    }
  }
  return out;
}

ExpertGradients experts_backward(const Array& x, const IndexArray& index, const Array& weights, const ExpertWeights& w,
                                 Activation activation, const Array& dout) {
  const Dims d = check_shapes(x, index, weights, w);
  PARITY_CHECK(dout.shape == x.shape, "[experts backward] output gradient {} does not match input {}",
               shape_str(dout.shape), shape_str(x.shape));
  const int64_t tokens = x.shape[0], k = index.shape[1], hidden = d.hidden, inter = d.inter;
  ExpertGradients g{Array(x.shape), Array(weights.shape), Array(w.gate_up_proj.shape), Array(w.down_proj.shape)};
  std::vector<double> gate(static_cast<size_t>(inter)), up(static_cast<size_t>(inter)), h(static_cast<size_t>(inter)),
      dh(static_cast<size_t>(inter));
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = 0; j < k; ++j) {
      const int64_t e = index.data[static_cast<size_t>(t * k + j)];
      const float* gu = w.gate_up_proj.data.data() + e * 2 * inter * hidden;  // [2I, H]
      const float* down = w.down_proj.data.data() + e * hidden * inter;       // [H, I]
      const double* xt = x.row(t);
      for (int64_t i = 0; i < inter; ++i) {
        double sg = 0, su = 0;
        for (int64_t c = 0; c < hidden; ++c) {
          sg += gu[i * hidden + c] * xt[c];
          su += gu[(inter + i) * hidden + c] * xt[c];
        }
        gate[i] = sg, up[i] = su;
        h[i] = activate(activation, sg, Numerics(Precision::F64)) * su;
      }
      const double weight = weights.row(t)[j];
      double dw = 0;
      std::fill(dh.begin(), dh.end(), 0.0);
      double* ddown = g.down_proj.data.data() + e * hidden * inter;
      for (int64_t o = 0; o < hidden; ++o) {
        double y = 0;
        for (int64_t i = 0; i < inter; ++i) y += down[o * inter + i] * h[i];
        dw += dout.row(t)[o] * y;
        const double dy = weight * dout.row(t)[o];
        for (int64_t i = 0; i < inter; ++i) {
          ddown[o * inter + i] += dy * h[i];
          dh[i] += down[o * inter + i] * dy;
        }
      }
      g.weights.row(t)[j] = dw;
      double* dgu = g.gate_up_proj.data.data() + e * 2 * inter * hidden;
      for (int64_t i = 0; i < inter; ++i) {
        const double dg = dh[i] * up[i] * activate_derivative(activation, gate[i]);
        const double du = dh[i] * activate(activation, gate[i], Numerics(Precision::F64));
        for (int64_t c = 0; c < hidden; ++c) {
          dgu[i * hidden + c] += dg * xt[c];
          dgu[(inter + i) * hidden + c] += du * xt[c];
          g.x.row(t)[c] += gu[i * hidden + c] * dg + gu[(inter + i) * hidden + c] * du;
        }
      }
    }
  return g;
}

}  // namespace parity::ops
