// OLMoE's hook wiring: which fixture keys each module reads (isolated replay) and emits
// (both modes). Key names follow golden/README.md; the math lives in olmoe.cpp.
#include "olmoe.h"
#include "ops/attention.h"
#include "ops/logits.h"

namespace parity {

namespace {

// Sub-modules of a decoder layer the reference replays, in the order HF runs them; the layer
// itself ("") comes last because its hook fires after all of them.
constexpr const char* kLayerModules[] = {
    "input_layernorm", "self_attn.q_proj", "self_attn.q_norm", "self_attn.k_proj",         "self_attn.k_norm",
    "self_attn.v_proj", "self_attn.o_proj", "self_attn",       "post_attention_layernorm", "mlp.gate",
    "mlp.experts",      "mlp",              "",
};

void emit_attention(const std::string& attn, const Olmoe::AttentionTrace& t, HookSink& sink) {
  sink.emit(attn + ".q_proj", t.q_proj);
  sink.emit(attn + ".q_norm", t.q_norm);
  sink.emit(attn + ".k_proj", t.k_proj);
  sink.emit(attn + ".k_norm", t.k_norm);
  sink.emit(attn + ".v_proj", t.v_proj);
  sink.emit(attn + ".o_proj@in", t.context);
  sink.emit(attn + ".o_proj", t.out);
  sink.emit(attn, t.out);
  sink.emit(attn + "@attn_weights", t.probs);
}

void emit_router(const std::string& gate, const Olmoe::RouterTrace& t, HookSink& sink) {
  sink.emit(gate, t.logits);
  sink.emit(gate + "@router_probs", t.probs);
  sink.emit_top_k(gate + "@top_k_index", {t.top_k_index, t.probs, t.routed});
  sink.emit(gate + "@top_k_weights", t.top_k_weights);
}

ops::RotaryTables hf_rotary(const HookInputs& in, const std::string& module) {
  return {in.floats(module + "@in.position_embeddings.0"), in.floats(module + "@in.position_embeddings.1")};
}

Shape with_last_dim(Shape shape, int64_t last) {
  shape.back() = last;
  return shape;
}

}  // namespace

std::vector<std::string> Olmoe::modules() const {
  std::vector<std::string> out = {"model.embed_tokens", "model.rotary_emb"};
  for (int64_t l = 0; l < config_.num_hidden_layers; ++l)
    for (const char* m : kLayerModules) {
      std::string path = layer_prefix(l) + m;
      if (path.back() == '.') path.pop_back();
      out.push_back(std::move(path));
    }
  out.insert(out.end(), {"model.norm", "lm_head", "/outputs/logits", "/outputs/logprobs"});
  return out;
}

void Olmoe::replay(const std::string& module, const HookInputs& in, HookSink& sink) const {
  const int64_t layer = decoder_layer_of(module);
  auto ends_with = [&](std::string_view tail) { return module.ends_with(tail); };
  if (module == "model.embed_tokens") return sink.emit(module, embed_tokens(in.ints(module + "@in")));
  if (module == "model.rotary_emb") {
    const ops::RotaryTables t = rotary_emb(in.ints("/inputs/position_ids"));
    sink.emit(module + "@cos", t.cos);
    return sink.emit(module + "@sin", t.sin);
  }
  if (module == "model.norm") {
    const Array y = norm(module, in.floats(module + "@in"));
    sink.emit(module, y);
    return sink.emit("model@last_hidden_state", y);
  }
  if (ends_with("_layernorm") || ends_with(".q_norm") || ends_with(".k_norm"))
    return sink.emit(module, norm(module, in.floats(module + "@in")));
  if (ends_with("_proj") || module == "lm_head") return sink.emit(module, linear(module, in.floats(module + "@in")));
  if (module == "/outputs/logits") return sink.emit(module, in.floats("lm_head"));  // no softcap in OLMoE
  if (module == "/outputs/logprobs")
    return sink.emit(module, ops::next_token_logprobs(in.floats("/outputs/logits"), in.ints("/inputs/input_ids"),
                                                      numerics_));
  if (ends_with(".self_attn")) {
    const AttentionTrace t =
        self_attn(layer, in.floats(module + "@in"), hf_rotary(in, module), in.floats(module + "@in.attention_mask"));
    sink.emit(module + ".o_proj@in", t.context);
    sink.emit(module, t.out);
    return sink.emit(module + "@attn_weights", t.probs);
  }
  if (ends_with(".mlp.gate")) {
    const IndexArray hf_index = in.ints(module + "@top_k_index");
    return emit_router(module, gate(layer, in.floats(module + "@in"), &hf_index, nullptr), sink);
  }
  if (ends_with(".mlp.experts"))
    return sink.emit(module, experts(layer, in.floats(module + "@in"), in.ints(module + "@in1"),
                                     in.floats(module + "@in2")));
  if (ends_with(".mlp")) {
    const Array x = in.floats(module + "@in");
    const Array tokens = reshaped(x, {x.rows(), config_.hidden_size});
    const IndexArray hf_index = in.ints(module + ".gate@top_k_index");  // routing replay
    const RouterTrace r = gate(layer, tokens, &hf_index, nullptr);
    return sink.emit(module, reshaped(experts(layer, tokens, hf_index, r.top_k_weights), x.shape));
  }
  if (layer >= 0 && module + "." == layer_prefix(layer)) {
    const IndexArray hf_index = in.ints(module + ".mlp.gate@top_k_index");
    const LayerTrace t = decoder_layer(layer, in.floats(module + "@in"), hf_rotary(in, module),
                                       in.floats(module + "@in.attention_mask"), &hf_index, nullptr);
    sink.emit(module + ".post_attention_layernorm@in", t.residual);
    return sink.emit(module, t.out);
  }
  throw Error(fmt::format("[olmoe] the reference has no replay for module {}", module));
}

void Olmoe::forward(const ForwardInputs& in, HookSink& sink, const RoutingPolicy* routing) const {
  Array h = embed_tokens(in.input_ids);
  sink.emit("model.embed_tokens", h);
  const ops::RotaryTables rope = rotary_emb(in.position_ids);
  sink.emit("model.rotary_emb@cos", rope.cos);
  sink.emit("model.rotary_emb@sin", rope.sin);
  const Array mask = ops::causal_mask(in.attention_mask, /*sliding_window=*/std::nullopt, numerics_);
  sink.emit("model.layers.0@in.attention_mask", mask);  // every later layer's mask key links to it
  for (int64_t l = 0; l < config_.num_hidden_layers; ++l) {
    const std::string p = layer_prefix(l);
    LayerTrace t = decoder_layer(l, h, rope, mask, /*replay_index=*/nullptr, routing);
    sink.emit(p + "input_layernorm", t.input_layernorm);
    emit_attention(p + "self_attn", t.attn, sink);
    sink.emit(p + "post_attention_layernorm@in", t.residual);
    sink.emit(p + "post_attention_layernorm", t.post_attention_layernorm);
    // The router reads the norm's output flattened to [T, H], a tensor of its own in the dump (the
    // experts' input links to it): emitted so that check gates it and compare finds its floor.
    sink.emit(p + "mlp.gate@in",
              reshaped(t.post_attention_layernorm, {t.post_attention_layernorm.rows(), config_.hidden_size}));
    emit_router(p + "mlp.gate", t.router, sink);
    sink.emit(p + "mlp.experts", t.experts);
    sink.emit(p + "mlp", reshaped(t.experts, with_last_dim(h.shape, config_.hidden_size)));
    sink.emit(p.substr(0, p.size() - 1), t.out);
    h = std::move(t.out);
  }
  const Array final_norm = norm("model.norm", h);
  sink.emit("model.norm", final_norm);
  sink.emit("model@last_hidden_state", final_norm);
  const Array logits = linear("lm_head", final_norm);
  sink.emit("lm_head", logits);
  sink.emit("/outputs/logits", logits);
  sink.emit("/outputs/logprobs", ops::next_token_logprobs(logits, in.input_ids, numerics_));
}

}  // namespace parity
