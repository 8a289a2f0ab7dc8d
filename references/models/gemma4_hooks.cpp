// Gemma-4's hook wiring: which fixture keys each step reads (isolated replay) and emits (both
// modes). Key names follow golden/README.md; the math lives in gemma4.cpp.
//
// Steps are modules ("model.layers.0.mlp.gate_proj") plus the tensors HF computes inline in a
// forward(), named by the fixture key that records them, so a wrong residual add or gating
// product is pinned to its own line instead of the next module:
//   <layer>.pre_feedforward_layernorm@in   h1 = h + post_attention_layernorm(attention)
//   <layer>.mlp.down_proj@in               act_fn(gate_proj) ⊙ up_proj
//   <layer>.router.proj@in                 router.norm ⊙ router.scale · H^-½
//   <layer>.post_feedforward_layernorm@in  post_feedforward_layernorm_1 + post_feedforward_layernorm_2
//   <layer>.per_layer_input_gate@in        h2 = h1 + post_feedforward_layernorm
//   <layer>.per_layer_projection@in        act_fn(per_layer_input_gate) ⊙ per-layer input
//   <layer>@in1                            the layer's per-layer input (PLE combination)
//   model.per_layer_projection_norm@in     per_layer_model_projection · H^-½, as [B, S, L, P]
//   <first layer of a type>@in.attention_mask                   the type's 4-D additive mask
//   <source layer + 1>@in.shared_kv_states.<type>.0 / .1        the K / V a source layer stored
//   /outputs/logits, /outputs/logprobs                           softcap, next-token logprobs
// Wiring checks: what a module is fed, as HF wires it, so a module fed the wrong tensor fails on
// its own input line (the module itself, replayed from that input, would pass):
//   <layer>.self_attn.q_norm@in, .k_norm@in     q_proj / k_proj output viewed [B, S, N, d]
//   <layer>.self_attn.v_norm@in                 v_proj output (k_proj's on k_eq_v layers) viewed
//                                               [B, S, Nkv, d]; gemma4_k_eq_v_after_norm_and_rope: the
//                                               keys after k_norm and RoPE
//   <layer>.mlp@in                              pre_feedforward_layernorm output;
//                                               gemma4_mlp_on_pre_feedforward_layernorm_2: its _2 twin's, [B, S, H]
//   <layer>.router@in (MoE)                     the residual h1 (pre_feedforward_layernorm@in) as [T, H];
//                                               gemma4_router_on_normed_input: pre_feedforward_layernorm_2 output
//   <layer>.pre_feedforward_layernorm_2@in      the residual h1 as [T, H]
//   <layer>.experts@in                          pre_feedforward_layernorm_2 output
// In isolated mode each step reads HF's own tensors (a wiring check: HF's producer tensors, e.g.
// v_norm@in on a k_eq_v layer from HF's k_proj, or from its k_norm and the layer's position
// embeddings under the variant); in chained mode they come from the reference's own forward.
#include <algorithm>
#include <cmath>

#include "gemma4.h"
#include "gemma4_hf_inputs.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/logits.h"

namespace parity {

namespace {

using KeyValue = Gemma4::KeyValue;
using gemma4_kv::hf_shared_kv;
using gemma4_kv::shared_kv_key;
using gemma4_kv::swap_axes_1_2;
using gemma4_kv::hf_rotary;


// [B, S, N·d] -> [B, S, N, d]
Array view_heads(Array a, int64_t dim) {
  PARITY_CHECK(a.shape.size() == 3 && dim > 0 && a.shape[2] % dim == 0, "[gemma4] {} is not [B, S, N·{}]",
               shape_str(a.shape), dim);
  Shape shape{a.shape[0], a.shape[1], a.shape[2] / dim, dim};
  return reshaped(std::move(a), std::move(shape));
}

std::string without_dot(std::string prefix) {
  prefix.pop_back();
  return prefix;
}

// The text model's ModelOutput; a multimodal Gemma4Model passes the same tensor on as its own.
void emit_last_hidden_state(const std::string& module_prefix, const Array& y, HookSink& sink) {
  sink.emit(without_dot(module_prefix) + "@last_hidden_state", y);
  if (module_prefix != "model.") sink.emit("model@last_hidden_state", y);
}

// The layer's own steps, in the order HF runs them; "" (the layer itself) last: its hook fires last.
std::vector<std::string> layer_steps(const Gemma4Config& c, const Gemma4Layer& l) {
  std::vector<std::string> s = {".input_layernorm", ".self_attn.q_proj", ".self_attn.q_norm@in", ".self_attn.q_norm"};
  if (!l.kv_shared) {
    s.emplace_back(".self_attn.k_proj");
    if (!l.k_eq_v) s.emplace_back(".self_attn.v_proj");
    s.insert(s.end(), {".self_attn.k_norm@in", ".self_attn.k_norm", ".self_attn.v_norm@in", ".self_attn.v_norm"});
  }
  s.insert(s.end(), {".self_attn.o_proj", ".self_attn", ".post_attention_layernorm", ".pre_feedforward_layernorm@in",
                     ".pre_feedforward_layernorm", ".mlp@in", ".mlp.gate_proj", ".mlp.act_fn", ".mlp.up_proj",
                     ".mlp.down_proj@in", ".mlp.down_proj", ".mlp"});
  if (c.enable_moe_block)
    s.insert(s.end(), {".post_feedforward_layernorm_1", ".router@in", ".router.norm", ".router.proj@in",
                       ".router.proj", ".router", ".pre_feedforward_layernorm_2@in", ".pre_feedforward_layernorm_2",
                       ".experts@in", ".experts", ".post_feedforward_layernorm_2", ".post_feedforward_layernorm@in"});
  s.emplace_back(".post_feedforward_layernorm");
  if (c.has_ple())
    s.insert(s.end(), {".per_layer_input_gate@in", ".per_layer_input_gate", ".act_fn", ".per_layer_projection@in",
                       ".per_layer_projection", ".post_per_layer_input_norm"});
  s.emplace_back("");
  return s;
}

// --- emitting traces (chained mode emits everything; isolated steps emit their own part) ---------

void emit_attention(const std::string& attn, const Gemma4::AttentionTrace& t, HookSink& sink) {
  sink.emit(attn + ".q_proj", t.q_proj);
  sink.emit(attn + ".q_norm@in", reshaped(t.q_proj, t.q_norm.shape));
  sink.emit(attn + ".q_norm", t.q_norm);
  if (!t.k_proj.data.empty()) {
    sink.emit(attn + ".k_proj", t.k_proj);
    if (!t.v_proj.data.empty()) sink.emit(attn + ".v_proj", t.v_proj);
    sink.emit(attn + ".k_norm@in", reshaped(t.k_proj, t.k_norm.shape));
    sink.emit(attn + ".k_norm", t.k_norm);
    sink.emit(attn + ".v_norm@in", t.v_norm_in);
    sink.emit(attn + ".v_norm", t.v_norm);
  }
  sink.emit(attn + ".o_proj@in", t.context);
  sink.emit(attn + ".o_proj", t.out);
  sink.emit(attn, t.out);
  sink.emit(attn + "@attn_weights", t.probs);
}

void emit_router_outputs(const std::string& router, const Gemma4::RouterTrace& t, HookSink& sink) {
  sink.emit(router, t.probs);  // Gemma4TextRouter returns the probabilities as element 0
  sink.emit_top_k(router + "@top_k_index", {t.top_k_index, t.probs, t.routed});
  sink.emit(router + "@top_k_weights", t.top_k_weights);
  sink.emit(router + "@router_probs", t.probs);
}

// residual: h1 [B, S, H], the MoE block's input.
void emit_moe(const std::string& p, const Array& residual, const Gemma4::MoeTrace& t, HookSink& sink) {
  sink.emit(p + "post_feedforward_layernorm_1", t.post_feedforward_layernorm_1);
  sink.emit(p + "router@in", t.router_in);
  sink.emit(p + "router.norm", t.router.norm);
  sink.emit(p + "router.proj@in", t.router.proj_in);
  sink.emit(p + "router.proj", t.router.logits);
  emit_router_outputs(p + "router", t.router, sink);
  sink.emit(p + "pre_feedforward_layernorm_2@in", reshaped(residual, t.pre_feedforward_layernorm_2.shape));
  sink.emit(p + "pre_feedforward_layernorm_2", t.pre_feedforward_layernorm_2);
  sink.emit(p + "experts@in", t.pre_feedforward_layernorm_2);
  sink.emit(p + "experts", t.experts);
  sink.emit(p + "post_feedforward_layernorm_2@in", reshaped(t.experts, residual.shape));  // [T, H] -> [B, S, H]
  sink.emit(p + "post_feedforward_layernorm_2", t.post_feedforward_layernorm_2);
  sink.emit(p + "post_feedforward_layernorm@in", t.sum);
}

void emit_ple(const std::string& p, const Array& residual, const Gemma4::PleTrace& t, HookSink& sink) {
  sink.emit(p + "per_layer_input_gate@in", residual);
  sink.emit(p + "per_layer_input_gate", t.gate);
  sink.emit(p + "act_fn", t.act_fn);
  sink.emit(p + "per_layer_projection@in", t.projection_in);
  sink.emit(p + "per_layer_projection", t.projection);
  sink.emit(p + "post_per_layer_input_norm", t.norm);
}

void emit_layer(const std::string& p, const Gemma4::LayerTrace& t, HookSink& sink) {
  sink.emit(p + "input_layernorm", t.input_layernorm);
  emit_attention(p + "self_attn", t.attn, sink);
  sink.emit(p + "post_attention_layernorm", t.post_attention_layernorm);
  sink.emit(p + "pre_feedforward_layernorm@in", t.residual);
  sink.emit(p + "pre_feedforward_layernorm", t.pre_feedforward_layernorm);
  sink.emit(p + "mlp@in", t.mlp_in);
  sink.emit(p + "mlp.gate_proj", t.mlp.gate_proj);
  sink.emit(p + "mlp.act_fn", t.mlp.act_fn);
  sink.emit(p + "mlp.up_proj", t.mlp.up_proj);
  sink.emit(p + "mlp.down_proj@in", t.mlp.down_proj_in);
  sink.emit(p + "mlp.down_proj", t.mlp.down_proj);
  sink.emit(p + "mlp", t.mlp.down_proj);
  if (t.moe) emit_moe(p, t.residual, *t.moe, sink);
  sink.emit(p + "post_feedforward_layernorm", t.post_feedforward_layernorm);
  if (t.ple) emit_ple(p, t.ple_residual, *t.ple, sink);
  sink.emit(without_dot(p), t.out);
}

}  // namespace

std::vector<std::string> Gemma4::modules() const {
  const Gemma4Config& c = config_;
  std::vector<std::string> out = {module_path("embed_tokens")};
  if (c.has_ple()) {
    out.insert(out.end(), {module_path("embed_tokens_per_layer"), module_path("per_layer_model_projection"),
                           module_path("per_layer_projection_norm@in"), module_path("per_layer_projection_norm")});
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) out.push_back(without_dot(layer_prefix(l)) + "@in1");
  }
  out.push_back(module_path("rotary_emb"));
  for (const auto& [type, rope] : c.rope) {
    const auto first = std::find(c.layer_types.begin(), c.layer_types.end(), type) - c.layer_types.begin();
    out.push_back(without_dot(layer_prefix(first)) + "@in.attention_mask");
  }
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    for (const std::string& step : layer_steps(c, layer_config(l))) out.push_back(without_dot(layer_prefix(l)) + step);
  out.insert(out.end(), {module_path("norm"), "lm_head", "/outputs/logits", "/outputs/logprobs"});
  return out;
}

bool Gemma4::replay_model_level(const std::string& m, const HookInputs& in, HookSink& sink) const {
  auto hf = [&](const std::string& key) { return in.floats(key); };
  auto emit = [&](const Array& value) {  // m was replayed
    sink.emit(m, value);
    return true;
  };
  if (m == module_path("embed_tokens")) return emit(embed_tokens(in.ints(m + "@in")));
  if (m == module_path("embed_tokens_per_layer")) return emit(embed_tokens_per_layer(in.ints(m + "@in")));
  if (m == module_path("per_layer_model_projection")) return emit(linear(m, hf(m + "@in")));
  if (m == module_path("per_layer_projection_norm@in"))
    return emit(per_layer_norm_input(hf(module_path("per_layer_model_projection"))));
  if (m == module_path("per_layer_projection_norm")) return emit(norm(m, hf(m + "@in")));
  if (m == module_path("rotary_emb")) {
    for (const auto& [type, rope] : config_.rope) {
      const ops::RotaryTables t = rotary_emb(in.ints("/inputs/position_ids"), type);
      sink.emit(fmt::format("{}@{}.cos", m, type), t.cos);
      sink.emit(fmt::format("{}@{}.sin", m, type), t.sin);
    }
    return true;
  }
  if (m == module_path("norm")) {
    const Array y = norm(m, hf(m + "@in"));
    sink.emit(m, y);
    emit_last_hidden_state(config_.module_prefix, y, sink);
    return true;
  }
  if (m == "lm_head") return emit(lm_head(hf(m + "@in")));
  if (m == "/outputs/logits") return emit(final_logits(hf("lm_head")));
  if (m == "/outputs/logprobs")
    return emit(ops::next_token_logprobs(hf("/outputs/logits"), in.ints("/inputs/input_ids"), numerics_));
  return false;
}

// A module of a decoder layer on HF's input to it; `step` is what follows "model.layers.<i>".
bool Gemma4::replay_layer_module(int64_t layer, const std::string& step, const std::string& m, const HookInputs& in,
                                 HookSink& sink) const {
  auto hf = [&](const std::string& key) { return in.floats(key); };
  auto emit = [&](const Array& value) {  // m was replayed
    sink.emit(m, value);
    return true;
  };
  const std::string p = layer_prefix(layer);
  if (step == ".input_layernorm" || step == ".post_attention_layernorm" || step == ".pre_feedforward_layernorm" ||
      step == ".self_attn.q_norm" || step == ".self_attn.k_norm" || step == ".post_feedforward_layernorm_1" ||
      step == ".pre_feedforward_layernorm_2" || step == ".post_feedforward_layernorm_2" ||
      step == ".post_feedforward_layernorm" || step == ".post_per_layer_input_norm")
    return emit(norm(m, hf(m + "@in")));
  if (step == ".self_attn.v_norm" || step == ".router.norm") return emit(norm_without_scale(hf(m + "@in")));
  if (step == ".router.proj") return emit(router_proj(layer, hf(m + "@in")));
  if (step.ends_with("_proj") || step == ".per_layer_input_gate" ||
      step == ".per_layer_projection")
    return emit(linear(m, hf(m + "@in")));
  if (step == ".mlp.act_fn" || step == ".act_fn") return emit(activation(hf(m + "@in")));
  if (step == ".mlp") return emit(mlp(layer, hf(m + "@in")).down_proj);
  if (step == ".router") {
    const IndexArray hf_index = in.ints(m + "@top_k_index");  // routing replay: weights at HF's experts
    emit_router_outputs(m, router(layer, hf(m + "@in"), &hf_index, nullptr), sink);
    return true;
  }
  if (step == ".experts") return emit(experts(layer, hf(m + "@in"), in.ints(m + "@in1"), hf(m + "@in2")));
  return false;
}

// A tensor HF computes inline in a forward(), from HF's own operands (see the top of this file).
bool Gemma4::replay_inline_step(int64_t layer, const std::string& step, const std::string& m, const HookInputs& in,
                                HookSink& sink) const {
  auto hf = [&](const std::string& key) { return in.floats(key); };
  auto emit = [&](const Array& value) {  // m was replayed
    sink.emit(m, value);
    return true;
  };
  auto sum_of = [&](const std::string& a, const std::string& b) { return ops::add(hf(a), hf(b), numerics_, m); };
  const std::string base = without_dot(layer_prefix(layer)), p = layer_prefix(layer);
  if (step == "@in1") {
    const Array combined = combine_per_layer_inputs(hf(module_path("per_layer_projection_norm")),
                                                    hf(module_path("embed_tokens_per_layer")));
    return emit(per_layer_input(combined, layer));
  }
  if (step == "@in.attention_mask")
    return emit(attention_mask(in.ints("/inputs/attention_mask"), layer_config(layer).layer_type));
  if (step == ".pre_feedforward_layernorm@in") return emit(sum_of(base + "@in", p + "post_attention_layernorm"));
  if (replay_wiring_check(layer, step, m, in, sink)) return true;
  if (step == ".mlp.down_proj@in")
    return emit(ops::multiply(hf(p + "mlp.act_fn"), hf(p + "mlp.up_proj"), numerics_, m));
  if (step == ".router.proj@in") return emit(router_proj_input(layer, hf(p + "router.norm")));
  if (step == ".post_feedforward_layernorm@in")
    return emit(sum_of(p + "post_feedforward_layernorm_1", p + "post_feedforward_layernorm_2"));
  if (step == ".per_layer_input_gate@in" && variants_.has(Variant::kGemma4ResidualFp32RoundedLate)) {
    // The fp32 stream is not a hook: rebuild it from the layer's input and both branches, rounded once.
    const Numerics fp32(Precision::F32);
    Array stream = ops::add(ops::add(hf(base + "@in"), hf(p + "post_attention_layernorm"), fp32, m),
                            hf(p + "post_feedforward_layernorm"), fp32, m);
    numerics_.act(stream);
    return emit(stream);
  }
  if (step == ".per_layer_input_gate@in")
    return emit(sum_of(p + "pre_feedforward_layernorm@in", p + "post_feedforward_layernorm"));
  if (step == ".per_layer_projection@in")
    return emit(ops::multiply(hf(p + "act_fn"), hf(base + "@in1"), numerics_, m));
  return false;
}

// What a module is fed (the wiring checks at the top of this file), from HF's producer tensors.
bool Gemma4::replay_wiring_check(int64_t layer, const std::string& step, const std::string& m, const HookInputs& in,
                                 HookSink& sink) const {
  auto hf = [&](const std::string& key) { return in.floats(key); };
  auto emit = [&](const Array& value) {  // m was replayed
    sink.emit(m, value);
    return true;
  };
  const Gemma4Layer& l = layer_config(layer);
  const std::string p = layer_prefix(layer), attn = p + "self_attn";
  auto heads = [&](const std::string& proj) { return view_heads(hf(attn + "." + proj), l.head_dim); };
  auto residual_tokens = [&] {  // h1 as [T, H]
    Array h1 = hf(p + "pre_feedforward_layernorm@in");
    const int64_t tokens = h1.rows();
    return reshaped(std::move(h1), {tokens, config_.hidden_size});
  };
  if (step == ".self_attn.q_norm@in") return emit(heads("q_proj"));
  if (step == ".self_attn.k_norm@in") return emit(heads("k_proj"));
  if (step == ".self_attn.v_norm@in") {
    if (!l.k_eq_v) return emit(heads("v_proj"));
    if (!variants_.has(Variant::kGemma4KEqVAfterNormRope)) return emit(heads("k_proj"));
    Array key = hf(attn + ".k_norm");  // the finished keys: k_norm's output through the layer's RoPE
    rotate(layer, key, hf_rotary(in, attn));
    return emit(key);
  }
  const bool moe = config_.enable_moe_block;
  if (step == ".mlp@in") {
    if (!(moe && variants_.has(Variant::kGemma4MlpOnPreFeedforward2))) return emit(hf(p + "pre_feedforward_layernorm"));
    const Array h1 = hf(p + "pre_feedforward_layernorm@in");
    return emit(reshaped(hf(p + "pre_feedforward_layernorm_2"), h1.shape));
  }
  if (step == ".router@in")
    return emit(variants_.has(Variant::kGemma4RouterOnNormedInput) ? hf(p + "pre_feedforward_layernorm_2")
                                                                     : residual_tokens());
  if (step == ".pre_feedforward_layernorm_2@in") return emit(residual_tokens());
  if (step == ".experts@in") return emit(hf(p + "pre_feedforward_layernorm_2"));
  return false;
}

void Gemma4::replay_self_attn(int64_t layer, const std::string& m, const HookInputs& in, HookSink& sink) const {
  const Gemma4Layer& l = layer_config(layer);
  const KeyValue shared = l.kv_shared ? hf_shared_kv(in, m, l.layer_type) : KeyValue{};
  const AttentionTrace t = self_attn(layer, in.floats(m + "@in"), hf_rotary(in, m), in.floats(m + "@in.attention_mask"),
                                     l.kv_shared ? &shared : nullptr);
  sink.emit(m + ".o_proj@in", t.context);
  sink.emit(m, t.out);
  sink.emit(m + "@attn_weights", t.probs);
  if (l.stores_kv && layer + 1 < config_.num_hidden_layers) {  // HF shows them as the next layer's input
    const std::string next = without_dot(layer_prefix(layer + 1));
    sink.emit(shared_kv_key(next, l.layer_type, 0), swap_axes_1_2(t.kv.key));
    sink.emit(shared_kv_key(next, l.layer_type, 1), swap_axes_1_2(t.kv.value));
  }
}

void Gemma4::replay_decoder_layer(int64_t layer, const std::string& m, const HookInputs& in, HookSink& sink) const {
  const Gemma4Layer& l = layer_config(layer);
  const KeyValue shared = l.kv_shared ? hf_shared_kv(in, m, l.layer_type) : KeyValue{};
  const Array per_layer = config_.has_ple() ? in.floats(m + "@in1") : Array();
  const IndexArray hf_index =
      config_.enable_moe_block ? in.ints(layer_prefix(layer) + "router@top_k_index") : IndexArray();
  const LayerTrace t = decoder_layer(layer, in.floats(m + "@in"), config_.has_ple() ? &per_layer : nullptr,
                                     hf_rotary(in, m), in.floats(m + "@in.attention_mask"),
                                     l.kv_shared ? &shared : nullptr, config_.enable_moe_block ? &hf_index : nullptr,
                                     nullptr);
  sink.emit(m, t.out);
}

void Gemma4::replay(const std::string& module, const HookInputs& in, HookSink& sink) const {
  if (replay_model_level(module, in, sink)) return;
  const int64_t layer = decoder_layer_of(module);
  const std::string base = layer >= 0 ? without_dot(layer_prefix(layer)) : "";
  PARITY_CHECK(layer >= 0 && module.starts_with(base), "[gemma4] the reference has no replay for module {}", module);
  const std::string step = module.substr(base.size());  // what follows "model.layers.<i>"
  if (step == ".self_attn") return replay_self_attn(layer, module, in, sink);
  if (step.empty()) return replay_decoder_layer(layer, module, in, sink);
  if (replay_inline_step(layer, step, module, in, sink) || replay_layer_module(layer, step, module, in, sink)) return;
  throw Error(fmt::format("[gemma4] the reference has no replay for module {}", module));
}

void Gemma4::forward(const ForwardInputs& in, HookSink& sink, const RoutingPolicy* routing) const {
  const Gemma4Config& c = config_;
  const IndexArray text_ids = c.text_input_ids(in.input_ids);
  Array h = embed_tokens(text_ids);
  sink.emit(module_path("embed_tokens"), h);
  std::optional<PerLayerInputs> pli;
  if (c.has_ple()) {
    pli = per_layer_inputs(text_ids, h);
    sink.emit(module_path("embed_tokens_per_layer"), pli->tokens);
    sink.emit(module_path("per_layer_model_projection"), pli->projection);
    sink.emit(module_path("per_layer_projection_norm@in"), pli->norm_in);
    sink.emit(module_path("per_layer_projection_norm"), pli->norm);
  }
  std::map<std::string, ops::RotaryTables> rope;
  std::map<std::string, Array> masks;
  for (const auto& [type, params] : c.rope) {
    rope[type] = rotary_emb(in.position_ids, type);
    sink.emit(fmt::format("{}@{}.cos", module_path("rotary_emb"), type), rope[type].cos);
    sink.emit(fmt::format("{}@{}.sin", module_path("rotary_emb"), type), rope[type].sin);
    masks[type] = attention_mask(in.attention_mask, type);
    const auto first = std::find(c.layer_types.begin(), c.layer_types.end(), type) - c.layer_types.begin();
    sink.emit(without_dot(layer_prefix(first)) + "@in.attention_mask", masks[type]);
  }
  SharedKv shared;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const Gemma4Layer& layer = layer_config(l);
    const std::string p = layer_prefix(l);
    Array per_layer;
    if (pli) {
      per_layer = per_layer_input(pli->combined, l);
      sink.emit(without_dot(p) + "@in1", per_layer);
    }
    const KeyValue* kv = layer.kv_shared ? &shared.at(layer.layer_type) : nullptr;  // resolved: a source comes first
    LayerTrace t = decoder_layer(l, h, pli ? &per_layer : nullptr, rope.at(layer.layer_type),
                                 masks.at(layer.layer_type), kv, /*replay_index=*/nullptr, routing);
    emit_layer(p, t, sink);
    if (layer.stores_kv) {
      shared[layer.layer_type] = t.attn.kv;
      if (l + 1 < c.num_hidden_layers) {
        const std::string next = without_dot(layer_prefix(l + 1));
        sink.emit(shared_kv_key(next, layer.layer_type, 0), swap_axes_1_2(t.attn.kv.key));
        sink.emit(shared_kv_key(next, layer.layer_type, 1), swap_axes_1_2(t.attn.kv.value));
      }
    }
    h = std::move(t.out);
  }
  const Array final_norm = norm(module_path("norm"), h);
  sink.emit(module_path("norm"), final_norm);
  emit_last_hidden_state(c.module_prefix, final_norm, sink);
  const Array head = lm_head(final_norm);
  sink.emit("lm_head", head);
  const Array logits = final_logits(head);
  sink.emit("/outputs/logits", logits);
  sink.emit("/outputs/logprobs", ops::next_token_logprobs(logits, in.input_ids, numerics_));
}

}  // namespace parity
