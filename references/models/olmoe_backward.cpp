// OLMoE's isolated backward (model.h replay_backward): each leaf module's gradients from HF's own
// inputs and output gradients, at the exact math of references/ops' *_backward. Which keys a module
// reads is its forward's (olmoe_hooks.cpp); the output gradients are /grad_hooks' keys.
#include "olmoe.h"

#include <algorithm>
#include <cmath>

#include "ops/attention.h"
#include "ops/embedding.h"
#include "ops/experts.h"
#include "ops/linear.h"
#include "ops/norm.h"
#include "ops/rope.h"
#include "ops/router.h"

namespace parity {

namespace {

// d loss / d the tensor at `key`, or zeros of `shape` when no gradient reached it.
Array grad_or_zero(const GradInputs& grads, const std::string& key, const Shape& shape) {
  std::optional<Array> g = grads.grad(key);
  if (!g) return Array(shape);
  PARITY_CHECK(parity::numel(g->shape) == parity::numel(shape), "[backward] gradient of {} is {}, the tensor {}", key,
               shape_str(g->shape), shape_str(shape));
  return reshaped(std::move(*g), shape);
}

// The output gradient a module's backward starts from: a module nothing downstream read (no
// gradient at all) has nothing to differentiate, which the caller must hear about.
Array output_grad(const GradInputs& grads, const std::string& key, const Shape& shape) {
  PARITY_CHECK(grads.grad(key).has_value(), "[backward] no gradient of {}'s output: nothing downstream of it was "
               "differentiated", key);
  return grad_or_zero(grads, key, shape);
}

Shape with_last(Shape shape, int64_t last) {
  shape.back() = last;
  return shape;
}

// clip_qkv's clamp: the gradient passes where the value lay within [-c, c] (torch's clamp backward).
void clamp_backward(const Array& before, std::optional<double> limit, Array& grad) {
  if (!limit) return;
  for (int64_t i = 0; i < grad.numel(); ++i)
    if (std::abs(before.data[i]) > *limit) grad.data[i] = 0;
}

Array clamped(Array a, std::optional<double> limit) {
  if (limit)
    for (double& x : a.data) x = std::clamp(x, -*limit, *limit);
  return a;
}

}  // namespace

// OlmoeAttention: x -> q/k/v_proj -> q_norm, k_norm (over all N·D columns) -> clip_qkv clamp ->
// heads -> RoPE (q, k) -> eager attention -> o_proj, backwards; its own forward recomputed at the
// exact math from HF's input, rotary tables and mask.
void Olmoe::self_attn_backward(int64_t layer, const std::string& m, const HookInputs& in, const GradInputs& grads,
                               HookSink& sink) const {
  const OlmoeConfig& c = config_;
  const Numerics exact(Precision::F64);
  const Array x = in.floats(m + "@in");
  const ops::RotaryTables rope{in.floats(m + "@in.position_embeddings.0"), in.floats(m + "@in.position_embeddings.1")};
  const AttentionTrace t = self_attn(layer, x, rope, in.floats(m + "@in.attention_mask"));
  auto heads = [&](Array a, int64_t n) { return reshaped(std::move(a), {x.shape[0], x.shape[1], n, c.head_dim}); };
  Array q = heads(clamped(t.q_norm, c.clip_qkv), c.num_attention_heads);
  Array k = heads(clamped(t.k_norm, c.clip_qkv), c.num_key_value_heads);
  const Array v = heads(clamped(t.v_proj, c.clip_qkv), c.num_key_value_heads);
  ops::apply_rope(q, rope, exact);
  ops::apply_rope(k, rope, exact);
  const double scaling = std::pow(static_cast<double>(c.head_dim), -0.5);
  const std::string p = m + ".";
  auto param = [&](const std::string& module, auto&& backward) {  // emits module.weight's share
    const auto w = weight(module + ".weight", weight_shape(module));
    Array dw(w->shape);
    Array dx = backward(*w, dw);
    sink.emit("/grads/" + module + ".weight", dw);
    return dx;
  };
  const Array dcontext = param(p + "o_proj", [&](const Weight& w, Array& dw) {
    return ops::linear_backward(t.context, w, output_grad(grads, m, x.shape), &dw, "o_proj");
  });
  ops::AttentionGradients g = ops::attention_backward(q, k, v, t.probs, scaling, dcontext);
  ops::apply_rope_backward(g.q, rope);
  ops::apply_rope_backward(g.k, rope);
  Array dq = reshaped(std::move(g.q), t.q_norm.shape), dk = reshaped(std::move(g.k), t.k_norm.shape),
        dv = reshaped(std::move(g.v), t.v_proj.shape);
  clamp_backward(t.q_norm, c.clip_qkv, dq);
  clamp_backward(t.k_norm, c.clip_qkv, dk);
  clamp_backward(t.v_proj, c.clip_qkv, dv);
  auto norm_back = [&](const std::string& module, const Array& before, const Array& dy) {
    return param(module, [&](const Weight& w, Array& dw) {
      return ops::rms_norm_backward(before, &w, c.rms_norm_eps, ops::NormWeight::kAfterCast, dy, &dw, 0.0, module);
    });
  };
  const Array dq_proj = norm_back(p + "q_norm", t.q_proj, dq), dk_proj = norm_back(p + "k_norm", t.k_proj, dk);
  Array dx(x.shape);
  for (const auto& [module, dy] : {std::pair{"q_proj", &dq_proj}, {"k_proj", &dk_proj}, {"v_proj", &dv}}) {
    const Array part = param(p + module, [&](const Weight& w, Array& dw) {
      return ops::linear_backward(x, w, *dy, &dw, module);
    });
    for (int64_t i = 0; i < dx.numel(); ++i) dx.data[i] += part.data[i];
  }
  sink.emit(m + "@in", dx);
}

void Olmoe::replay_backward(const std::string& module, const HookInputs& in, const GradInputs& grads,
                            HookSink& sink) const {
  const int64_t layer = decoder_layer_of(module);
  auto ends_with = [&](std::string_view tail) { return module.ends_with(tail); };
  const OlmoeConfig& c = config_;
  if (module == "model.embed_tokens") {
    const IndexArray ids = in.ints(module + "@in");
    Shape out_shape = ids.shape;
    out_shape.push_back(c.hidden_size);
    Array dtable({c.vocab_size, c.hidden_size});
    ops::embedding_backward(ids, output_grad(grads, module, out_shape), dtable);
    return sink.emit("/grads/model.embed_tokens.weight", dtable);
  }
  if (module == "model.norm" || ends_with("_layernorm") || ends_with(".q_norm") || ends_with(".k_norm")) {
    const Array x = in.floats(module + "@in");
    const auto w = weight(module + ".weight", weight_shape(module));
    const double offset = variants_.has(Variant::kRmsNormOnePlusWeight) ? 1.0 : 0.0;
    Array dw(w->shape);
    sink.emit(module + "@in", ops::rms_norm_backward(x, w.get(), c.rms_norm_eps, ops::NormWeight::kAfterCast,
                                                     output_grad(grads, module, x.shape), &dw, offset, module));
    return sink.emit("/grads/" + module + ".weight", dw);
  }
  if (ends_with("_proj") || module == "lm_head") {
    const bool tied_head = module == "lm_head" && c.tie_word_embeddings;
    const std::string name = tied_head ? "model.embed_tokens.weight" : module + ".weight";
    const Array x = in.floats(module + "@in");
    const auto w = weight(name, weight_shape(module));
    Array dw(w->shape);
    const Array dy = output_grad(grads, module, with_last(x.shape, w->shape[0]));
    sink.emit(module + "@in", ops::linear_backward(x, *w, dy, &dw, module));
    return sink.emit("/grads/" + name, dw);
  }
  if (ends_with(".mlp.gate")) {
    // logits -> full softmax -> HF's top-k (an integer choice: no gradient) -> gathered weights.
    // HF returns the logits too; their gradient (none unless a loss reads them) adds to the softmax's.
    const Array x = in.floats(module + "@in");
    const IndexArray index = in.ints(module + "@top_k_index");
    const auto w = weight(module + ".weight", {c.num_experts, c.hidden_size});
    const Array logits = ops::linear(x, *w, Numerics(Precision::F64), module);
    const Array probs = ops::router_probs(logits, Numerics(Precision::F64));
    PARITY_CHECK(grads.grad(module + "@top_k_weights") || grads.grad(module),
                 "[backward] no gradient of {}'s outputs: nothing downstream of it was differentiated", module);
    const Array dprobs = ops::gather_top_k_backward(probs, index, c.norm_topk_prob,
                                                    grad_or_zero(grads, module + "@top_k_weights", index.shape));
    Array dlogits = ops::router_probs_backward(probs, dprobs);
    const Array direct = grad_or_zero(grads, module, logits.shape);
    for (int64_t i = 0; i < dlogits.numel(); ++i) dlogits.data[i] += direct.data[i];
    Array dw(w->shape);
    sink.emit(module + "@in", ops::linear_backward(x, *w, dlogits, &dw, module));
    return sink.emit("/grads/" + module + ".weight", dw);
  }
  if (ends_with(".mlp.experts")) {
    const std::string p = layer_prefix(layer) + "mlp.experts.";
    const auto gate_up = weight(p + "gate_up_proj", {c.num_experts, 2 * c.intermediate_size, c.hidden_size});
    const auto down = weight(p + "down_proj", {c.num_experts, c.hidden_size, c.intermediate_size});
    const Array x = in.floats(module + "@in");
    const ops::ExpertGradients g =
        ops::experts_backward(x, in.ints(module + "@in1"), in.floats(module + "@in2"), {*gate_up, *down}, c.hidden_act,
                              output_grad(grads, module, x.shape));
    sink.emit(module + "@in", g.x);
    sink.emit(module + "@in2", g.weights);
    sink.emit("/grads/" + p + "gate_up_proj", g.gate_up_proj);
    return sink.emit("/grads/" + p + "down_proj", g.down_proj);
  }
  if (ends_with(".self_attn")) return self_attn_backward(layer, module, in, grads, sink);
  ReferenceModel::replay_backward(module, in, grads, sink);
}

}  // namespace parity
