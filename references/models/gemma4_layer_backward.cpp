// Gemma-4's backward pieces at the exact math of references/ops' *_backward, and the chained
// backward built from them (model.h forward_backward). Each piece takes its forward's values and
// output gradient, returns its input gradient and adds its parameters' gradients to `params`;
// gemma4_backward.cpp replays them one module at a time from HF's tensors.
#include "gemma4.h"

#include <cmath>

#include "backward_util.h"
#include "gemma4_hf_inputs.h"
#include "ops/activation.h"
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

using backward::accumulate;
using backward::kExact;
using backward::param_grad;

Array Gemma4::norm_backward(const std::string& module, const Array& x, const Array& dy, ParamGrads& params) const {
  const auto w = weight(module + ".weight", weight_shape(module));
  const double offset = variants_.has(Variant::kRmsNormOnePlusWeight) ? 1.0 : 0.0;
  return ops::rms_norm_backward(x, w.get(), config_.rms_norm_eps, ops::NormWeight::kInFloat32, dy,
                                &param_grad(params, module + ".weight", w->shape), offset, module);
}

Array Gemma4::linear_backward(const std::string& module, const Array& x, const Array& dy, ParamGrads& params) const {
  const bool tied_head = module == "lm_head" && config_.tie_word_embeddings;
  const std::string name = tied_head ? module_path("embed_tokens.weight") : module + ".weight";
  const auto w = weight(name, weight_shape(module));
  return ops::linear_backward(x, *w, dy, &param_grad(params, name, w->shape), module);
}

Array Gemma4::activation_backward(const Array& x, const Array& dy) const {
  Array dx = dy;
  for (int64_t i = 0; i < dx.numel(); ++i) dx.data[i] *= ops::activate_derivative(config_.hidden_activation, x.data[i]);
  return dx;
}

// Gemma4TextAttention: x -> q_proj -> heads -> q_norm -> RoPE; k_proj -> heads -> k_norm -> RoPE;
// v_proj (k_eq_v: the raw k_proj heads) -> v_norm (no weight); eager attention at scaling 1 ->
// o_proj; its forward recomputed from x. KV sharing couples layers through HF's shared_kv_states:
// a shared layer's K/V gradient goes to `dshared` (it belongs to the source layer), and a source
// layer adds `readers`, the K/V gradients of the layers that read its K/V, to its own.
Array Gemma4::self_attn_backward(int64_t layer, const Array& x, const ops::RotaryTables& rope, const Array& mask,
                                 const KeyValue* shared, const Array& dy, const KeyValue* readers, ParamGrads& params,
                                 KeyValue* dshared) const {
  const Gemma4Layer& l = layer_config(layer);
  PARITY_CHECK(variants_.none(), "[backward] the attention backward computes HF's math only (no variants)");
  const AttentionTrace t = self_attn(layer, x, rope, mask, l.kv_shared ? shared : nullptr);
  Array q = t.q_norm;
  ops::apply_rope(q, rope, kExact);
  const std::string p = layer_prefix(layer) + "self_attn.";
  auto heads = [&](const Array& a) { return reshaped(a, {x.shape[0], x.shape[1], a.shape[2] / l.head_dim, l.head_dim}); };
  auto flat = [&](Array a) { return reshaped(std::move(a), {x.shape[0], x.shape[1], a.shape[2] * a.shape[3]}); };
  const Array dcontext = linear_backward(p + "o_proj", t.context, dy, params);
  ops::AttentionGradients g = ops::attention_backward(q, t.kv.key, t.kv.value, t.probs, 1.0, dcontext);
  ops::apply_rope_backward(g.q, rope);
  Array dx = linear_backward(p + "q_proj", x, flat(norm_backward(p + "q_norm", heads(t.q_proj), g.q, params)), params);
  if (l.kv_shared) {
    PARITY_CHECK(dshared != nullptr, "[backward] layer {} shares K/V: its K/V gradient needs somewhere to go", layer);
    *dshared = {std::move(g.k), std::move(g.v)};
    return dx;
  }
  if (readers) {
    accumulate(g.k, readers->key);
    accumulate(g.v, readers->value);
  }
  ops::apply_rope_backward(g.k, rope);
  Array dk_raw = norm_backward(p + "k_norm", heads(t.k_proj), g.k, params);
  const Array dv_in = ops::rms_norm_backward(t.v_norm_in, nullptr, config_.rms_norm_eps, ops::NormWeight::kNone, g.v,
                                             nullptr);
  if (l.k_eq_v) accumulate(dk_raw, dv_in);
  else accumulate(dx, linear_backward(p + "v_proj", x, flat(dv_in), params));
  accumulate(dx, linear_backward(p + "k_proj", x, flat(std::move(dk_raw)), params));
  return dx;
}

// Gemma4TextMLP: down_proj(act_fn(gate_proj(x)) * up_proj(x)).
Array Gemma4::mlp_backward(int64_t layer, const Array& x, const Array& dy, ParamGrads& params) const {
  const std::string p = layer_prefix(layer) + "mlp.";
  const MlpTrace t = mlp(layer, x);
  const Array dproduct = linear_backward(p + "down_proj", t.down_proj_in, dy, params);
  Array dact = dproduct, dup = dproduct;
  for (int64_t i = 0; i < dproduct.numel(); ++i) {
    dact.data[i] *= t.up_proj.data[i];
    dup.data[i] *= t.act_fn.data[i];
  }
  Array dx = linear_backward(p + "gate_proj", x, activation_backward(t.gate_proj, dact), params);
  accumulate(dx, linear_backward(p + "up_proj", x, dup, params));
  return dx;
}

// Gemma4TextRouter: x -> norm (no weight) -> ⊙ scale · H^-½ -> proj -> softmax over all experts ->
// the routed top-k (no gradient) -> renormalised -> · per_expert_scale[index]. Its outputs are the
// probabilities and the scaled top-k weights; each may carry a gradient (dprobs, dweights).
Array Gemma4::router_backward(int64_t layer, const Array& x, const IndexArray& index, const Array* dweights,
                              const Array* dprobs, ParamGrads& params) const {
  const Gemma4Config& c = config_;
  PARITY_CHECK(!variants_.has(Variant::kGemma4RouterFoldedBf16), "[backward] the folded-router variant has no backward");
  const std::string m = layer_prefix(layer) + "router";
  const auto scale = weight(m + ".scale", {c.hidden_size});
  const auto proj = weight(m + ".proj.weight", weight_shape(m + ".proj"));
  const auto per_expert_scale = weight(m + ".per_expert_scale", {c.num_experts});
  const double root = std::pow(static_cast<double>(c.hidden_size), -0.5);
  const Array normed = ops::rms_norm(x, nullptr, c.rms_norm_eps, ops::NormWeight::kNone, kExact);
  const Array proj_in = ops::scale(ops::multiply_last_dim(normed, *scale, kExact), root, kExact);
  const Array probs = ops::router_probs(ops::linear(proj_in, *proj, kExact), kExact);
  Array d = dweights ? ops::gather_top_k_backward(
                           probs, index, true,
                           ops::per_expert_scale_backward(ops::gather_top_k(probs, index, true, kExact), index,
                                                          *per_expert_scale, *dweights,
                                                          &param_grad(params, m + ".per_expert_scale", {c.num_experts})))
                     : Array(probs.shape);
  if (dprobs) accumulate(d, *dprobs);
  const Array dproj_in = ops::linear_backward(proj_in, *proj, ops::router_probs_backward(probs, d),
                                              &param_grad(params, m + ".proj.weight", proj->shape), m);
  const Array dnormed = ops::multiply_last_dim_backward(normed, *scale, ops::scale_backward(dproj_in, root, kExact),
                                                        &param_grad(params, m + ".scale", scale->shape));
  return ops::rms_norm_backward(x, nullptr, c.rms_norm_eps, ops::NormWeight::kNone, dnormed, nullptr);
}

Array Gemma4::experts_backward(int64_t layer, const Array& x, const IndexArray& index, const Array& weights,
                               const Array& dy, Array& dweights, ParamGrads& params) const {
  const Gemma4Config& c = config_;
  const std::string p = layer_prefix(layer) + "experts.";
  const auto gate_up = weight(p + "gate_up_proj", {c.num_experts, 2 * c.moe_intermediate_size, c.hidden_size});
  const auto down = weight(p + "down_proj", {c.num_experts, c.hidden_size, c.moe_intermediate_size});
  return backward::experts_backward(p, {*gate_up, *down}, c.hidden_activation, x, index, weights, dy, dweights, params);
}

// Gemma4TextDecoderLayer, backwards (decoder_layer in gemma4.cpp is the forward, `t` its trace):
// r = h + post_attention_layernorm(self_attn(input_layernorm(h)));
// s = r + post_feedforward_layernorm(ffn), ffn = mlp(pre_feedforward_layernorm(r)) or, with MoE,
//     post_feedforward_layernorm_1(mlp(...)) + post_feedforward_layernorm_2(experts(pre_feedforward_layernorm_2(r),
//     router(r)));
// PLE: s += post_per_layer_input_norm(per_layer_projection(act(per_layer_input_gate(s)) * per_layer_input));
// out = layer_scalar · s (a buffer: no gradient of its own).
Gemma4::LayerGrads Gemma4::decoder_layer_backward(int64_t layer, const Array& h, const Array* per_layer_input,
                                                  const ops::RotaryTables& rope, const Array& mask,
                                                  const KeyValue* shared, const LayerTrace& t, const Array& dout,
                                                  const KeyValue* readers, ParamGrads& params, HookSink* passes) const {
  PARITY_CHECK(variants_.none(), "[backward] the decoder layer backward computes HF's math only (no variants)");
  const std::string p = layer_prefix(layer);
  const int64_t tokens = h.rows();
  LayerGrads g;
  Array ds = ops::scale_backward(dout, weight(p + "layer_scalar", {1})->data[0], kExact);
  if (t.ple) {
    const PleTrace& ple = *t.ple;
    const Array dprojection = norm_backward(p + "post_per_layer_input_norm", ple.projection, ds, params);
    const Array dproduct = linear_backward(p + "per_layer_projection", ple.projection_in, dprojection, params);
    Array dact = dproduct;
    g.per_layer_input = dproduct;
    for (int64_t i = 0; i < dproduct.numel(); ++i) {
      dact.data[i] *= per_layer_input->data[i];
      g.per_layer_input.data[i] *= ple.act_fn.data[i];
    }
    accumulate(ds, linear_backward(p + "per_layer_input_gate", t.ple_residual, activation_backward(ple.gate, dact), params));
  }
  const Array dffn = norm_backward(p + "post_feedforward_layernorm", t.moe ? t.moe->sum : t.mlp.down_proj, ds, params);
  Array dr = ds;
  Array dmlp = dffn;
  if (t.moe) {
    const MoeTrace& moe = *t.moe;
    dmlp = norm_backward(p + "post_feedforward_layernorm_1", t.mlp.down_proj, dffn, params);
    const Array dexperts = reshaped(
        norm_backward(p + "post_feedforward_layernorm_2", reshaped(moe.experts, t.residual.shape), dffn, params),
        moe.experts.shape);
    if (passes) passes->emit(p + "experts", dexperts);
    Array dweights;
    const Array dnormed2 = experts_backward(layer, moe.pre_feedforward_layernorm_2, moe.router.routed,
                                            moe.router.top_k_weights, dexperts, dweights, params);
    if (passes) passes->emit(p + "router@top_k_weights", dweights);
    const Array residual_tokens = reshaped(t.residual, {tokens, config_.hidden_size});
    accumulate(dr, reshaped(router_backward(layer, residual_tokens, moe.router.routed, &dweights, nullptr, params),
                            t.residual.shape));
    accumulate(dr, reshaped(norm_backward(p + "pre_feedforward_layernorm_2", residual_tokens, dnormed2, params),
                            t.residual.shape));
  }
  if (passes) passes->emit(p + "mlp", dmlp);
  accumulate(dr, norm_backward(p + "pre_feedforward_layernorm", t.residual, mlp_backward(layer, t.mlp_in, dmlp, params),
                               params));
  const Array dattn = norm_backward(p + "post_attention_layernorm", t.attn.out, dr, params);
  if (passes) passes->emit(p + "self_attn", dattn);
  const Array dnormed = self_attn_backward(layer, t.input_layernorm, rope, mask, shared, dattn, readers, params, &g.shared);
  g.h = std::move(dr);
  accumulate(g.h, norm_backward(p + "input_layernorm", h, dnormed, params));
  return g;
}

namespace {

// [B, S, P] into layer `layer` of a [B, S, L, P] gradient (per_layer_input's backward).
void add_per_layer(Array& dcombined, const Array& d, int64_t layer) {
  const int64_t tokens = dcombined.shape[0] * dcombined.shape[1], layers = dcombined.shape[2],
                width = dcombined.shape[3];
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t i = 0; i < width; ++i) dcombined.data[static_cast<size_t>((t * layers + layer) * width + i)] += d.data[static_cast<size_t>(t * width + i)];
}

}  // namespace

void Gemma4::forward_backward(const ForwardInputs& in, const Loss& loss, HookSink& sink,
                              const RoutingPolicy* routing) const {
  const Gemma4Config& c = config_;
  PARITY_CHECK(variants_.none(), "[backward] the chained backward computes HF's math only (no variants)");
  // The forward, keeping each layer's input and trace (as forward() in gemma4_hooks.cpp runs it).
  const IndexArray ids = c.text_input_ids(in.input_ids);
  const Array embedded = embed_tokens(ids);
  std::optional<PerLayerInputs> pli;
  if (c.has_ple()) pli = per_layer_inputs(ids, embedded);
  std::map<std::string, ops::RotaryTables> rope;
  std::map<std::string, Array> masks;
  for (const auto& [type, unused] : c.rope) {
    rope[type] = rotary_emb(in.position_ids, type);
    masks[type] = attention_mask(in.attention_mask, type);
  }
  SharedKv shared;
  std::vector<Array> inputs{embedded}, per_layer(static_cast<size_t>(c.num_hidden_layers));
  std::vector<LayerTrace> traces;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const Gemma4Layer& layer = layer_config(l);
    if (pli) per_layer[static_cast<size_t>(l)] = per_layer_input(pli->combined, l);
    traces.push_back(decoder_layer(l, inputs.back(), pli ? &per_layer[static_cast<size_t>(l)] : nullptr,
                                   rope.at(layer.layer_type), masks.at(layer.layer_type),
                                   layer.kv_shared ? &shared.at(layer.layer_type) : nullptr, nullptr, routing));
    if (layer.stores_kv) shared[layer.layer_type] = traces.back().attn.kv;
    inputs.push_back(traces.back().out);
  }
  const Array final_norm = norm(module_path("norm"), inputs.back());
  const Array head = lm_head(final_norm);
  const Array logits = final_logits(head);
  // The loss scores the ids as given (HF's labels are input_ids); `ids` (placeholders as the pad id)
  // are only what the embeddings read.
  const auto [dlogprobs, value] =
      backward::loss_gradient(loss, ops::next_token_logprobs(logits, in.input_ids, kExact), in.input_ids);
  sink.emit("/loss/value", Array({}, {value}));
  // The backward, emitting the output gradient of each module it passes.
  ParamGrads params;
  Array dhead = ops::next_token_logprobs_backward(logits, in.input_ids, dlogprobs);
  if (c.final_logit_softcapping) ops::softcap_backward(head, *c.final_logit_softcapping, dhead);
  sink.emit("lm_head", dhead);
  const Array dnorm = linear_backward("lm_head", final_norm, dhead, params);
  sink.emit(module_path("norm"), dnorm);
  Array dh = norm_backward(module_path("norm"), inputs.back(), dnorm, params);
  SharedKv readers;  // by layer type: the K/V gradients of the layers read so far, for their source
  Array dcombined = pli ? Array(pli->combined.shape) : Array();
  for (int64_t l = c.num_hidden_layers - 1; l >= 0; --l) {
    const Gemma4Layer& layer = layer_config(l);
    const std::string p = layer_prefix(l);
    sink.emit(p.substr(0, p.size() - 1), dh);
    const auto pending = readers.find(layer.layer_type);
    const bool source = layer.stores_kv && pending != readers.end();
    LayerGrads g = decoder_layer_backward(l, inputs[static_cast<size_t>(l)], pli ? &per_layer[static_cast<size_t>(l)] : nullptr,
                                          rope.at(layer.layer_type), masks.at(layer.layer_type),
                                          layer.kv_shared ? &shared.at(layer.layer_type) : nullptr,
                                          traces[static_cast<size_t>(l)], dh, source ? &pending->second : nullptr,
                                          params, &sink);
    if (source) readers.erase(pending);
    if (layer.kv_shared) {
      auto [it, first] = readers.try_emplace(layer.layer_type, g.shared);
      if (!first) accumulate(it->second.key, g.shared.key), accumulate(it->second.value, g.shared.value);
    }
    if (pli) add_per_layer(dcombined, g.per_layer_input, l);
    dh = std::move(g.h);
  }
  PARITY_CHECK(readers.empty(), "[backward] shared K/V of type {} reached no source layer", readers.begin()->first);
  Array dembedded = dh;
  if (pli) {
    // combined = (per_layer_projection_norm(projection · H^-½) + tokens) · 2^-½.
    const Array dsum = ops::scale_backward(dcombined, std::pow(2.0, -0.5), kExact);
    sink.emit(module_path("per_layer_projection_norm"), dsum);
    const Array dnorm_in = norm_backward(module_path("per_layer_projection_norm"), pli->norm_in, dsum, params);
    const Array dprojection = ops::scale_backward(reshaped(dnorm_in, pli->projection.shape),
                                                  std::pow(static_cast<double>(c.hidden_size), -0.5), kExact);
    sink.emit(module_path("per_layer_model_projection"), dprojection);
    accumulate(dembedded, linear_backward(module_path("per_layer_model_projection"), embedded, dprojection, params));
    const Array dtokens = reshaped(dsum, pli->tokens.shape);
    sink.emit(module_path("embed_tokens_per_layer"), dtokens);
    ops::embedding_backward(ids, ops::scale_backward(dtokens, embed_scale(c.hidden_size_per_layer_input), kExact),
                            param_grad(params, module_path("embed_tokens_per_layer.weight"),
                                       {c.vocab_size_per_layer_input, c.num_hidden_layers * c.hidden_size_per_layer_input}),
                            c.padding_idx);
  }
  sink.emit(module_path("embed_tokens"), dembedded);
  ops::embedding_backward(ids, ops::scale_backward(dembedded, embed_scale(c.hidden_size), kExact),
                          param_grad(params, module_path("embed_tokens.weight"), {c.vocab_size, c.hidden_size}),
                          c.padding_idx);
  for (const auto& [name, dw] : params) sink.emit("/grads/" + name, dw);
}

}  // namespace parity
