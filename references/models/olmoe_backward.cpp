// OLMoE's backward at the exact math of references/ops' *_backward:
//   replay_backward   isolated: one module from HF's own inputs and output gradients (model.h);
//   forward_backward  chained: the reference's own forward, then its backward from the loss.
// Both run the same pieces (norm_backward, ..., self_attn_backward), which take a module's forward
// values and output gradient, return its input gradient and add its parameters' gradients.
#include "olmoe.h"

#include <algorithm>
#include <cmath>

#include "backward_util.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/experts.h"
#include "ops/linear.h"
#include "ops/logits.h"
#include "ops/norm.h"
#include "ops/rope.h"
#include "ops/router.h"

namespace parity {

namespace {

using backward::kExact;
using backward::output_grad;
using backward::with_last;
using backward::accumulate;
using backward::loss_gradient;
using backward::param_grad;

// clip_qkv's clamp: the gradient passes where the value lay within [-c, c], bounds included
// (torch's clamp backward), c the clip in the activation dtype (torch casts the bound to it: a bf16
// value equal to bf16(clip) passes its gradient, though it lies above the clip itself).
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

void emit_params(const std::map<std::string, Array>& params, HookSink& sink) {
  for (const auto& [name, g] : params) sink.emit("/grads/" + name, g);
}

}  // namespace

Array Olmoe::norm_backward(const std::string& module, const Array& x, const Array& dy, ParamGrads& params) const {
  const auto w = weight(module + ".weight", weight_shape(module));
  const double offset = variants_.has(Variant::kRmsNormOnePlusWeight) ? 1.0 : 0.0;
  return ops::rms_norm_backward(x, w.get(), config_.rms_norm_eps, ops::NormWeight::kAfterCast, dy,
                                &param_grad(params, module + ".weight", w->shape), offset, module);
}

Array Olmoe::linear_backward(const std::string& module, const Array& x, const Array& dy, ParamGrads& params) const {
  const bool tied_head = module == "lm_head" && config_.tie_word_embeddings;
  const std::string name = tied_head ? "model.embed_tokens.weight" : module + ".weight";
  const auto w = weight(name, weight_shape(module));
  return ops::linear_backward(x, *w, dy, &param_grad(params, name, w->shape), module);
}

// logits -> full softmax -> the routed top-k (an integer choice: no gradient) -> gathered weights.
Array Olmoe::gate_backward(int64_t layer, const Array& x, const IndexArray& routed, const Array& dweights,
                           const Array* dlogits, ParamGrads& params) const {
  const OlmoeConfig& c = config_;
  const std::string name = layer_prefix(layer) + "mlp.gate.weight";
  const auto w = weight(name, {c.num_experts, c.hidden_size});
  const Array probs = ops::router_probs(ops::linear(x, *w, kExact), kExact);
  Array d = ops::router_probs_backward(probs, ops::gather_top_k_backward(probs, routed, c.norm_topk_prob, dweights));
  if (dlogits) {
    PARITY_CHECK(dlogits->shape == d.shape, "[backward] router logits gradient {} is not {}", shape_str(dlogits->shape),
                 shape_str(d.shape));
    accumulate(d, *dlogits);
  }
  return ops::linear_backward(x, *w, d, &param_grad(params, name, w->shape), "mlp.gate");
}

Array Olmoe::experts_backward(int64_t layer, const Array& x, const IndexArray& index, const Array& weights,
                              const Array& dy, Array& dweights, ParamGrads& params) const {
  const OlmoeConfig& c = config_;
  const std::string p = layer_prefix(layer) + "mlp.experts.";
  const auto gate_up = weight(p + "gate_up_proj", {c.num_experts, 2 * c.intermediate_size, c.hidden_size});
  const auto down = weight(p + "down_proj", {c.num_experts, c.hidden_size, c.intermediate_size});
  return backward::experts_backward(p, {*gate_up, *down}, c.hidden_act, x, index, weights, dy, dweights, params);
}

// OlmoeAttention: x -> q/k/v_proj -> q_norm, k_norm (over all N·D columns) -> clip_qkv clamp ->
// heads -> RoPE (q, k) -> eager attention -> o_proj, backwards; its forward recomputed exactly.
std::optional<Olmoe::HfClamp> Olmoe::hf_clamp(const HookInputs& in, const std::string& attn) const {
  if (!config_.clip_qkv) return std::nullopt;
  return HfClamp{in.floats(attn + ".q_norm"), in.floats(attn + ".k_norm"), in.floats(attn + ".v_proj")};
}

Array Olmoe::self_attn_backward(int64_t layer, const Array& x, const ops::RotaryTables& rope, const Array& mask,
                                const Array& dy, ParamGrads& params, const HfClamp* hf_clamp) const {
  const OlmoeConfig& c = config_;
  const std::optional<double> clip = c.clip_qkv ? std::optional(numerics_.act(*c.clip_qkv)) : std::nullopt;
  const AttentionTrace t = self_attn(layer, x, rope, mask);
  auto heads = [&](Array a, int64_t n) { return reshaped(std::move(a), {x.shape[0], x.shape[1], n, c.head_dim}); };
  Array q = heads(clamped(t.q_norm, clip), c.num_attention_heads);
  Array k = heads(clamped(t.k_norm, clip), c.num_key_value_heads);
  const Array v = heads(clamped(t.v_proj, clip), c.num_key_value_heads);
  ops::apply_rope(q, rope, kExact);
  ops::apply_rope(k, rope, kExact);
  const std::string p = layer_prefix(layer) + "self_attn.";
  const Array dcontext = linear_backward(p + "o_proj", t.context, dy, params);
  ops::AttentionGradients g =
      ops::attention_backward(q, k, v, t.probs, std::pow(static_cast<double>(c.head_dim), -0.5), dcontext);
  ops::apply_rope_backward(g.q, rope);
  ops::apply_rope_backward(g.k, rope);
  Array dq = reshaped(std::move(g.q), t.q_norm.shape), dk = reshaped(std::move(g.k), t.k_norm.shape),
        dv = reshaped(std::move(g.v), t.v_proj.shape);
  auto decided_by = [&](const Array& own, const Array* hf) {
    PARITY_CHECK(!hf || hf->shape == own.shape, "[backward] HF's pre-clamp tensor is {}, the reference's {}",
                 shape_str(hf->shape), shape_str(own.shape));
    return hf ? *hf : own;
  };
  clamp_backward(decided_by(t.q_norm, hf_clamp ? &hf_clamp->q_norm : nullptr), clip, dq);
  clamp_backward(decided_by(t.k_norm, hf_clamp ? &hf_clamp->k_norm : nullptr), clip, dk);
  clamp_backward(decided_by(t.v_proj, hf_clamp ? &hf_clamp->v_proj : nullptr), clip, dv);
  Array dx = linear_backward(p + "q_proj", x, norm_backward(p + "q_norm", t.q_proj, dq, params), params);
  accumulate(dx, linear_backward(p + "k_proj", x, norm_backward(p + "k_norm", t.k_proj, dk, params), params));
  accumulate(dx, linear_backward(p + "v_proj", x, dv, params));
  return dx;
}

Array Olmoe::moe_backward(int64_t layer, const Array& x, const RouterTrace& router, const Array& dy,
                          ParamGrads& params, HookSink* passes) const {
  const std::string p = layer_prefix(layer);
  const Array tokens = reshaped(x, {x.rows(), config_.hidden_size});
  const Array dexperts = reshaped(dy, tokens.shape);
  if (passes) passes->emit(p + "mlp.experts", dexperts);
  Array dweights;
  Array dtokens = experts_backward(layer, tokens, router.routed, router.top_k_weights, dexperts, dweights, params);
  if (passes) passes->emit(p + "mlp.gate@top_k_weights", dweights);
  accumulate(dtokens, gate_backward(layer, tokens, router.routed, dweights, nullptr, params));
  return reshaped(std::move(dtokens), x.shape);
}

// out = residual + mlp(post_attention_layernorm(residual)), residual = h + self_attn(input_layernorm(h)).
Array Olmoe::decoder_layer_backward(int64_t layer, const Array& h, const LayerTrace& t, const ops::RotaryTables& rope,
                                    const Array& mask, const Array& dh, ParamGrads& params, HookSink* passes,
                                    const HfClamp* hf_clamp) const {
  const std::string p = layer_prefix(layer);
  if (passes) passes->emit(p + "mlp", dh);
  Array dresidual = dh;
  accumulate(dresidual, norm_backward(p + "post_attention_layernorm", t.residual,
                                      moe_backward(layer, t.post_attention_layernorm, t.router, dh, params, passes),
                                      params));
  if (passes) passes->emit(p + "self_attn", dresidual);
  const Array dnormed = self_attn_backward(layer, t.input_layernorm, rope, mask, dresidual, params, hf_clamp);
  Array dinput = dresidual;
  accumulate(dinput, norm_backward(p + "input_layernorm", h, dnormed, params));
  return dinput;
}

void Olmoe::replay_backward(const std::string& module, const HookInputs& in, const GradInputs& grads,
                            HookSink& sink) const {
  const int64_t layer = decoder_layer_of(module);
  auto ends_with = [&](std::string_view tail) { return module.ends_with(tail); };
  const OlmoeConfig& c = config_;
  ParamGrads params;
  if (module == "model.embed_tokens") {
    const IndexArray ids = in.ints(module + "@in");
    Shape out = ids.shape;
    out.push_back(c.hidden_size);
    ops::embedding_backward(ids, output_grad(grads, module, out),
                            param_grad(params, "model.embed_tokens.weight", {c.vocab_size, c.hidden_size}), c.pad_token_id);
  } else if (module == "model.norm" || ends_with("_layernorm") || ends_with(".q_norm") || ends_with(".k_norm")) {
    const Array x = in.floats(module + "@in");
    sink.emit(module + "@in", norm_backward(module, x, output_grad(grads, module, x.shape), params));
  } else if (ends_with("_proj") || module == "lm_head") {
    const Array x = in.floats(module + "@in");
    const Shape out = with_last(x.shape, weight_shape(module)[0]);
    sink.emit(module + "@in", linear_backward(module, x, output_grad(grads, module, out), params));
  } else if (ends_with(".mlp.gate")) {
    // HF returns the logits too; their gradient (none unless a loss reads them) adds to the softmax's.
    const Array x = in.floats(module + "@in");
    const IndexArray index = in.ints(module + "@top_k_index");
    PARITY_CHECK(grads.grad(module + "@top_k_weights") || grads.grad(module),
                 "[backward] no gradient of {}'s outputs: nothing downstream of it was differentiated", module);
    const std::optional<Array> dlogits =
        grads.grad(module) ? std::optional<Array>(output_grad(grads, module, {x.rows(), c.num_experts})) : std::nullopt;
    const Array dweights =
        grads.grad(module + "@top_k_weights") ? output_grad(grads, module + "@top_k_weights", index.shape) : Array(index.shape);
    sink.emit(module + "@in", gate_backward(layer, x, index, dweights, dlogits ? &*dlogits : nullptr, params));
  } else if (ends_with(".mlp.experts")) {
    const Array x = in.floats(module + "@in");
    Array dweights;
    sink.emit(module + "@in", experts_backward(layer, x, in.ints(module + "@in1"), in.floats(module + "@in2"),
                                               output_grad(grads, module, x.shape), dweights, params));
    sink.emit(module + "@in2", dweights);
  } else if (ends_with(".mlp")) {
    // Routed as HF routed (routing replay, as the forward's isolated check does).
    const Array x = in.floats(module + "@in");
    const IndexArray index = in.ints(module + ".gate@top_k_index");
    const RouterTrace router = gate(layer, reshaped(x, {x.rows(), c.hidden_size}), &index, nullptr);
    sink.emit(module + "@in", moe_backward(layer, x, router, output_grad(grads, module, x.shape), params, nullptr));
  } else if (layer >= 0 && module == layer_prefix(layer).substr(0, layer_prefix(layer).size() - 1)) {
    const Array h = in.floats(module + "@in");
    const ops::RotaryTables rope{in.floats(module + "@in.position_embeddings.0"),
                                 in.floats(module + "@in.position_embeddings.1")};
    const Array mask = in.floats(module + "@in.attention_mask");
    const IndexArray index = in.ints(module + ".mlp.gate@top_k_index");
    const LayerTrace t = decoder_layer(layer, h, rope, mask, &index, nullptr);
    const std::optional<HfClamp> clamp = hf_clamp(in, module + ".self_attn");
    sink.emit(module + "@in", decoder_layer_backward(layer, h, t, rope, mask, output_grad(grads, module, h.shape),
                                                     params, &sink, clamp ? &*clamp : nullptr));
  } else if (ends_with(".self_attn")) {
    const Array x = in.floats(module + "@in");
    const ops::RotaryTables rope{in.floats(module + "@in.position_embeddings.0"),
                                 in.floats(module + "@in.position_embeddings.1")};
    const std::optional<HfClamp> clamp = hf_clamp(in, module);
    sink.emit(module + "@in", self_attn_backward(layer, x, rope, in.floats(module + "@in.attention_mask"),
                                                 output_grad(grads, module, x.shape), params, clamp ? &*clamp : nullptr));
  } else {
    return ReferenceModel::replay_backward(module, in, grads, sink);
  }
  emit_params(params, sink);
}

void Olmoe::forward_backward(const ForwardInputs& in, const Loss& loss, HookSink& sink,
                             const RoutingPolicy* routing) const {
  const OlmoeConfig& c = config_;
  PARITY_CHECK(variants_.none(), "[backward] the chained backward computes HF's math only (no variants)");
  // The forward, keeping each layer's input and trace.
  const Array embedded = embed_tokens(in.input_ids);
  const ops::RotaryTables rope = rotary_emb(in.position_ids);
  const Array mask = ops::causal_mask(in.attention_mask, std::nullopt, numerics_);
  std::vector<Array> inputs{embedded};
  std::vector<LayerTrace> traces;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    traces.push_back(decoder_layer(l, inputs.back(), rope, mask, /*replay_index=*/nullptr, routing));
    inputs.push_back(traces.back().out);
  }
  const Array final_norm = norm("model.norm", inputs.back());
  const Array logits = linear("lm_head", final_norm);
  const auto [dlogprobs, value] = loss_gradient(loss, ops::next_token_logprobs(logits, in.input_ids, kExact), in.input_ids);
  sink.emit("/loss/value", Array({}, {value}));
  // The backward, emitting the output gradient of each module it passes.
  ParamGrads params;
  const Array dlogits = ops::next_token_logprobs_backward(logits, in.input_ids, dlogprobs);
  sink.emit("lm_head", dlogits);
  const Array dnorm = linear_backward("lm_head", final_norm, dlogits, params);
  sink.emit("model.norm", dnorm);
  Array dh = norm_backward("model.norm", inputs.back(), dnorm, params);
  for (int64_t l = c.num_hidden_layers - 1; l >= 0; --l) {
    const std::string p = layer_prefix(l);
    sink.emit(p.substr(0, p.size() - 1), dh);
    dh = decoder_layer_backward(l, inputs[static_cast<size_t>(l)], traces[static_cast<size_t>(l)], rope, mask, dh,
                                params, &sink);
  }
  sink.emit("model.embed_tokens", dh);
  ops::embedding_backward(in.input_ids, dh, param_grad(params, "model.embed_tokens.weight", {c.vocab_size, c.hidden_size}),
                          c.pad_token_id);
  emit_params(params, sink);
}

}  // namespace parity
