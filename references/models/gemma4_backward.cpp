// Gemma-4's isolated backward (model.h replay_backward): each module's gradients from HF's own
// inputs and output gradients, at the exact math of references/ops' *_backward (the composite
// pieces: gemma4_layer_backward.cpp). Which keys a module reads is its forward's (gemma4_hooks.cpp).
#include "gemma4.h"

#include "backward_util.h"
#include "gemma4_hf_inputs.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/experts.h"
#include "ops/linear.h"
#include "ops/norm.h"
#include "ops/rope.h"
#include "ops/router.h"

namespace parity {

using backward::kExact;
using backward::output_grad;
using backward::with_last;
using gemma4_kv::hf_rotary;

void Gemma4::replay_backward(const std::string& module, const HookInputs& in, const GradInputs& grads,
                             HookSink& sink) const {
  const Gemma4Config& c = config_;
  // Gemma4TextScaledWordEmbedding: table[id] · √dim; the table's gradient is the scaled scatter-add.
  auto scaled_embedding = [&](const std::string& name, int64_t rows, int64_t width, int64_t dim) {
    const IndexArray ids = in.ints(module + "@in");
    Shape out = ids.shape;
    out.push_back(width);
    Array dtable({rows, width});
    ops::embedding_backward(ids, ops::scale_backward(output_grad(grads, module, out), embed_scale(dim), kExact),
                            dtable, c.padding_idx);
    sink.emit("/grads/" + name, dtable);
  };
  if (module == module_path("embed_tokens"))
    return scaled_embedding(module_path("embed_tokens.weight"), c.vocab_size, c.hidden_size, c.hidden_size);
  if (module == module_path("embed_tokens_per_layer"))
    return scaled_embedding(module_path("embed_tokens_per_layer.weight"), c.vocab_size_per_layer_input,
                            c.num_hidden_layers * c.hidden_size_per_layer_input, c.hidden_size_per_layer_input);
  if (module == module_path("norm") || module == module_path("per_layer_projection_norm"))
    return backward_norm(module, /*weighted=*/true, in, grads, sink);
  if (module == "lm_head" || module == module_path("per_layer_model_projection"))
    return backward_linear(module, in, grads, sink);
  const int64_t layer = decoder_layer_of(module);
  const std::string base = layer >= 0 ? layer_prefix(layer).substr(0, layer_prefix(layer).size() - 1) : "";
  if (layer >= 0 && replay_backward_layer_module(layer, module.substr(base.size()), module, in, grads, sink)) return;
  ReferenceModel::replay_backward(module, in, grads, sink);
}

namespace {

void emit_params(const Gemma4::ParamGrads& params, HookSink& sink) {
  for (const auto& [name, dw] : params) sink.emit("/grads/" + name, dw);
}

}  // namespace

// The isolated replays of the leaf pieces (gemma4_layer_backward.cpp) from HF's tensors.
void Gemma4::backward_norm(const std::string& m, bool weighted, const HookInputs& in, const GradInputs& grads,
                           HookSink& sink) const {
  const Array x = in.floats(m + "@in");
  const Array dy = output_grad(grads, m, x.shape);
  if (!weighted)
    return sink.emit(m + "@in", ops::rms_norm_backward(x, nullptr, config_.rms_norm_eps, ops::NormWeight::kNone, dy,
                                                       nullptr));
  ParamGrads params;
  sink.emit(m + "@in", norm_backward(m, x, dy, params));
  emit_params(params, sink);
}

void Gemma4::backward_linear(const std::string& m, const HookInputs& in, const GradInputs& grads, HookSink& sink) const {
  const Array x = in.floats(m + "@in");
  ParamGrads params;
  sink.emit(m + "@in", linear_backward(m, x, output_grad(grads, m, with_last(x.shape, weight_shape(m)[0])), params));
  emit_params(params, sink);
}

bool Gemma4::replay_backward_layer_module(int64_t layer, const std::string& step, const std::string& m,
                                          const HookInputs& in, const GradInputs& grads, HookSink& sink) const {
  if (step == ".input_layernorm" || step == ".post_attention_layernorm" || step == ".pre_feedforward_layernorm" ||
      step == ".self_attn.q_norm" || step == ".self_attn.k_norm" || step == ".post_feedforward_layernorm_1" ||
      step == ".pre_feedforward_layernorm_2" || step == ".post_feedforward_layernorm_2" ||
      step == ".post_feedforward_layernorm" || step == ".post_per_layer_input_norm") {
    backward_norm(m, /*weighted=*/true, in, grads, sink);
    return true;
  }
  if (step == ".self_attn.v_norm" || step == ".router.norm") {
    backward_norm(m, /*weighted=*/false, in, grads, sink);
    return true;
  }
  if (step.ends_with("_proj") || step == ".router.proj" || step == ".per_layer_input_gate" ||
      step == ".per_layer_projection") {
    backward_linear(m, in, grads, sink);
    return true;
  }
  if (step == ".mlp.act_fn" || step == ".act_fn") {
    const Array x = in.floats(m + "@in");
    sink.emit(m + "@in", activation_backward(x, output_grad(grads, m, x.shape)));
    return true;
  }
  if (step == ".experts") {
    const Array x = in.floats(m + "@in");
    ParamGrads params;
    Array dweights;
    sink.emit(m + "@in", experts_backward(layer, x, in.ints(m + "@in1"), in.floats(m + "@in2"),
                                          output_grad(grads, m, x.shape), dweights, params));
    sink.emit(m + "@in2", dweights);
    emit_params(params, sink);
    return true;
  }
  if (step == ".router") {
    replay_backward_router(layer, m, in, grads, sink);
    return true;
  }
  if (step == ".self_attn") {
    replay_backward_self_attn(layer, m, in, grads, sink);
    return true;
  }
  if (step == ".mlp") {
    const Array x = in.floats(m + "@in");
    ParamGrads params;
    sink.emit(m + "@in", mlp_backward(layer, x, output_grad(grads, m, x.shape), params));
    emit_params(params, sink);
    return true;
  }
  if (step.empty()) {
    replay_backward_decoder_layer(layer, m, in, grads, sink);
    return true;
  }
  return false;
}

std::optional<Gemma4::KeyValue> Gemma4::readers_kv_grad(int64_t layer, const GradInputs& grads) const {
  std::optional<KeyValue> sum;
  for (int64_t other = layer + 1; other < config_.num_hidden_layers; ++other) {
    if (!layer_config(other).kv_shared || layer_config(other).kv_source != layer) continue;
    const std::string reader = layer_prefix(other) + "self_attn";
    std::optional<Array> key = grads.grad(gemma4_kv::shared_kv_key(reader, layer_config(layer).layer_type, 0));
    std::optional<Array> value = grads.grad(gemma4_kv::shared_kv_key(reader, layer_config(layer).layer_type, 1));
    if (!key && !value) continue;
    PARITY_CHECK(key && value, "[backward] {} has a gradient of only one of the shared K and V", reader);
    KeyValue g{gemma4_kv::swap_axes_1_2(*key), gemma4_kv::swap_axes_1_2(*value)};
    if (!sum) sum = std::move(g);
    else backward::accumulate(sum->key, g.key), backward::accumulate(sum->value, g.value);
  }
  return sum;
}

// A shared layer's K/V gradient is its input's (HF's shared_kv_states, [B, Nkv, S, d]); a source
// layer adds its readers' (model.h: what arrives from outside the module, as the output gradient).
void Gemma4::replay_backward_self_attn(int64_t layer, const std::string& m, const HookInputs& in,
                                       const GradInputs& grads, HookSink& sink) const {
  const Gemma4Layer& l = layer_config(layer);
  const Array x = in.floats(m + "@in");
  const KeyValue shared = l.kv_shared ? gemma4_kv::hf_shared_kv(in, m, l.layer_type) : KeyValue{};
  const std::optional<KeyValue> readers = l.kv_shared ? std::nullopt : readers_kv_grad(layer, grads);
  ParamGrads params;
  KeyValue dshared;
  sink.emit(m + "@in", self_attn_backward(layer, x, hf_rotary(in, m), in.floats(m + "@in.attention_mask"), &shared,
                                          output_grad(grads, m, x.shape), readers ? &*readers : nullptr, params,
                                          &dshared));
  if (l.kv_shared) {
    sink.emit(gemma4_kv::shared_kv_key(m, l.layer_type, 0), gemma4_kv::swap_axes_1_2(dshared.key));
    sink.emit(gemma4_kv::shared_kv_key(m, l.layer_type, 1), gemma4_kv::swap_axes_1_2(dshared.value));
  }
  emit_params(params, sink);
}

void Gemma4::replay_backward_router(int64_t layer, const std::string& m, const HookInputs& in, const GradInputs& grads,
                                    HookSink& sink) const {
  const Array x = in.floats(m + "@in");
  const IndexArray index = in.ints(m + "@top_k_index");
  PARITY_CHECK(grads.grad(m) || grads.grad(m + "@top_k_weights"),
               "[backward] no gradient of {}'s outputs: nothing downstream of it was differentiated", m);
  const std::optional<Array> dweights =
      grads.grad(m + "@top_k_weights") ? std::optional(output_grad(grads, m + "@top_k_weights", index.shape)) : std::nullopt;
  const std::optional<Array> dprobs =
      grads.grad(m) ? std::optional(output_grad(grads, m, {x.rows(), config_.num_experts})) : std::nullopt;
  ParamGrads params;
  sink.emit(m + "@in", router_backward(layer, x, index, dweights ? &*dweights : nullptr, dprobs ? &*dprobs : nullptr,
                                       params));
  emit_params(params, sink);
}

// The whole layer from HF's inputs, routed as HF routed (the forward's isolated check does too).
void Gemma4::replay_backward_decoder_layer(int64_t layer, const std::string& m, const HookInputs& in,
                                           const GradInputs& grads, HookSink& sink) const {
  const Gemma4Layer& l = layer_config(layer);
  const Array h = in.floats(m + "@in");
  const Array per_layer = config_.has_ple() ? in.floats(m + "@in1") : Array();
  const ops::RotaryTables rope = hf_rotary(in, m);
  const Array mask = in.floats(m + "@in.attention_mask");
  const KeyValue shared = l.kv_shared ? gemma4_kv::hf_shared_kv(in, m, l.layer_type) : KeyValue{};
  const IndexArray index = config_.enable_moe_block ? in.ints(layer_prefix(layer) + "router@top_k_index") : IndexArray();
  const LayerTrace t = decoder_layer(layer, h, config_.has_ple() ? &per_layer : nullptr, rope, mask,
                                     l.kv_shared ? &shared : nullptr, config_.enable_moe_block ? &index : nullptr, nullptr);
  const std::optional<KeyValue> readers = l.kv_shared ? std::nullopt : readers_kv_grad(layer, grads);
  ParamGrads params;
  const LayerGrads g = decoder_layer_backward(layer, h, config_.has_ple() ? &per_layer : nullptr, rope, mask,
                                              l.kv_shared ? &shared : nullptr, t, output_grad(grads, m, h.shape),
                                              readers ? &*readers : nullptr, params, &sink);
  sink.emit(m + "@in", g.h);
  if (config_.has_ple()) sink.emit(m + "@in1", g.per_layer_input);
  if (l.kv_shared) {
    sink.emit(gemma4_kv::shared_kv_key(m, l.layer_type, 0), gemma4_kv::swap_axes_1_2(g.shared.key));
    sink.emit(gemma4_kv::shared_kv_key(m, l.layer_type, 1), gemma4_kv::swap_axes_1_2(g.shared.value));
  }
  emit_params(params, sink);
}

}  // namespace parity
