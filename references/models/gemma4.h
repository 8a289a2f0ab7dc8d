// Gemma-4 text decoder (Gemma4ForCausalLM, transformers v5.15.0 modeling_gemma4.py), dense and MoE,
// wired from shared ops; gemma4_config.h resolves the per-layer geometry. x0 = embed · bf16/f32(√H).
// Per layer i (h the residual stream [B, S, H]; every RMSNorm multiplies by w, not 1 + w, in fp32):
//   attention  x = input_layernorm(h); q = RoPE(q_norm(q_proj(x))) per head;
//              own K/V: k = RoPE(k_norm(k_proj(x))), v = v_norm(v_proj(x)) (weight-less), where a
//              k_eq_v full layer takes v = v_norm(k_proj(x)) (raw, before k_norm and RoPE);
//              KV-shared layers read their source layer's (k, v); scaling 1.0; sliding layers see
//              keys i - W < j <= i, full layers j <= i
//   h1 = h + post_attention_layernorm(o_proj(attention))
//   m  = mlp(pre_feedforward_layernorm(h1))                      dense, gelu_tanh, width 2I on
//                                                                double-wide shared layers
//   MoE: m = post_feedforward_layernorm_1(m)
//          + post_feedforward_layernorm_2(experts(pre_feedforward_layernorm_2(h1), router(h1)))
//        router(h1): weight-less norm ⊙ scale · H^-½, proj, fp32 softmax over ALL experts, top-k,
//        renormalise, ⊙ per_expert_scale[idx] (the router sees the un-normed residual)
//   h2 = h1 + post_feedforward_layernorm(m)
//   PLE: h2 += post_per_layer_input_norm(per_layer_projection(gelu(per_layer_input_gate(h2)) ⊙ pli_i))
//   out = h2 · layer_scalar
// Per-layer inputs: pli = (norm(per_layer_model_projection(x0) · H^-½) + embed_per_layer · √P) · 2^-½,
// layer-major [B, S, L, P]. Head: model.norm, tied lm_head, tanh(logits / c) · c when softcapped.
// Variants (variants.h) switch single steps to a known bug's math, in replay() and forward() alike:
//   rope_contiguous_partial (rotate), attention_scale_inv_sqrt_d and k_eq_v_after_norm_and_rope
//   (self_attn), router_on_normed_input and mlp_on_pre_feedforward_layernorm_2 (decoder_layer / moe
//   wiring), router_folded_bf16 (router_proj_input, router_proj), rmsnorm_one_plus_weight (norm),
//   layer_scalar_ignored (scale_by_layer_scalar), no_final_softcap (final_logits).
#pragma once

#include <map>
#include <memory>

#include "gemma4_config.h"
#include "model.h"
#include "ops/norm.h"
#include "ops/rope.h"
#include "variants.h"

namespace parity {

class Gemma4 final : public ReferenceModel {
 public:
  // variants: known bugs to reproduce (variants.h); the default is HF's math.
  Gemma4(Gemma4Config config, const WeightSource& weights, Numerics numerics, bool keep_weights = false,
         Variants variants = {});

  std::vector<std::string> modules() const override;
  void replay(const std::string& module, const HookInputs& inputs, HookSink& sink) const override;
  void forward(const ForwardInputs& inputs, HookSink& sink, const RoutingPolicy* routing) const override;
  // Leaf modules and the router (gemma4_backward.cpp): scaled embeddings, every norm, every
  // projection and the head, act_fn, the router and the experts.
  void replay_backward(const std::string& module, const HookInputs& inputs, const GradInputs& grads,
                       HookSink& sink) const override;

  // K and V as attention reads them, [B, S, Nkv, d]: after k_norm and RoPE, and after v_norm.
  struct KeyValue {
    Array key, value;
  };
  using SharedKv = std::map<std::string, KeyValue>;  // by layer type: what the source layers stored

  // Intermediates of one module call, kept so forward() can emit every hook of the layer.
  struct AttentionTrace {
    Array q_proj, q_norm;
    Array k_proj, v_proj, k_norm, v_norm;  // all empty on KV-shared layers; v_proj also empty on k_eq_v layers
    Array v_norm_in;                       // what v_norm reads [B, S, Nkv, d]: v_proj, or k_proj on k_eq_v
                                           // layers (k_eq_v_after_norm_and_rope: the finished keys)
    KeyValue kv;                           // own (after norms and RoPE) or the source's
    Array context;                         // o_proj input, [B, S, Nh·d]
    Array probs;                           // attn_weights, [B, Nh, S, S]
    Array out;                             // o_proj output
  };
  struct MlpTrace {
    Array gate_proj, act_fn, up_proj, down_proj_in, down_proj;
  };
  struct RouterTrace {
    Array norm, proj_in, logits, probs;  // proj_in = norm ⊙ scale · H^-½; probs [T, E] (the router's output)
    IndexArray top_k_index;              // the reference's own choice
    IndexArray routed;                   // what the experts use: own, replayed (isolated) or tie-resolved
    Array top_k_weights;                 // at `routed`, renormalised, ⊙ per_expert_scale (float32)
  };
  struct MoeTrace {
    Array post_feedforward_layernorm_1;  // on the dense MLP output
    Array router_in;                     // what the router reads [T, H]: the residual h1
                                         // (router_on_normed_input: pre_feedforward_layernorm_2's output)
    RouterTrace router;
    Array pre_feedforward_layernorm_2;   // experts input [T, H]
    Array experts;                       // [T, H]
    Array post_feedforward_layernorm_2;  // [B, S, H]
    Array sum;                           // post_feedforward_layernorm's input
  };
  struct PleTrace {
    Array gate, act_fn, projection_in, projection, norm;
  };
  struct LayerTrace {
    Array input_layernorm;
    AttentionTrace attn;
    Array post_attention_layernorm;
    Array residual;  // h1: pre_feedforward_layernorm's input
    Array pre_feedforward_layernorm;
    Array mlp_in;  // what the dense MLP reads: pre_feedforward_layernorm's output (or, under
                   // mlp_on_pre_feedforward_layernorm_2, pre_feedforward_layernorm_2's as [B, S, H])
    MlpTrace mlp;
    std::optional<MoeTrace> moe;
    Array post_feedforward_layernorm;
    Array ple_residual;  // h2: per_layer_input_gate's input (PLE only)
    std::optional<PleTrace> ple;
    Array out;
  };
  // Per-layer embeddings, model level (PLE only).
  struct PerLayerInputs {
    Array tokens;      // embed_tokens_per_layer(ids) · √P, [B, S, L·P]
    Array projection;  // per_layer_model_projection(x0), [B, S, L·P]
    Array norm_in;     // projection · H^-½ as [B, S, L, P]
    Array norm;        // per_layer_projection_norm(norm_in)
    Array combined;    // (norm + tokens) · 2^-½, [B, S, L, P]
  };

  const Gemma4Config& config() const { return config_; }
  std::string layer_prefix(int64_t layer) const;  // "model.layers.3." (or "model.language_model.layers.3.")

  Array embed_tokens(const IndexArray& input_ids) const;
  double embed_scale(int64_t dim) const;  // √dim as the embedding multiplies by it
  Array embed_tokens_per_layer(const IndexArray& input_ids) const;
  Array per_layer_norm_input(const Array& projection) const;  // · H^-½, reshaped to [B, S, L, P]
  Array combine_per_layer_inputs(const Array& norm, const Array& tokens) const;
  static Array per_layer_input(const Array& combined, int64_t layer);  // [B, S, L, P] -> [B, S, P]
  PerLayerInputs per_layer_inputs(const IndexArray& input_ids, const Array& embeds) const;
  ops::RotaryTables rotary_emb(const IndexArray& position_ids, const std::string& layer_type) const;
  Array attention_mask(const IndexArray& padding, const std::string& layer_type) const;

  Array norm(const std::string& module, const Array& x) const;  // any Gemma4RMSNorm with a weight
  void rotate(int64_t layer, Array& x, const ops::RotaryTables& rope) const;  // RoPE of q or k [B, S, N, d], in place
  Array norm_without_scale(const Array& x) const;               // v_norm, router.norm
  ops::NormArithmetic norm_arithmetic() const;
  Array linear(const std::string& module, const Array& x) const;
  Array activation(const Array& x) const;  // hidden_activation, elementwise
  // shared: the source layer's K/V, required on KV-shared layers and ignored elsewhere.
  AttentionTrace self_attn(int64_t layer, const Array& x, const ops::RotaryTables& rope, const Array& mask,
                           const KeyValue* shared) const;
  MlpTrace mlp(int64_t layer, const Array& x) const;
  Array router_proj_input(int64_t layer, const Array& normed) const;
  Array router_proj(int64_t layer, const Array& proj_in) const;  // router.proj
  // x: h1 as [T, H]. replay_index: HF's top-k (routing replay); otherwise routing may resolve near-ties.
  RouterTrace router(int64_t layer, const Array& x, const IndexArray* replay_index,
                     const RoutingPolicy* routing) const;
  Array experts(int64_t layer, const Array& x, const IndexArray& index, const Array& weights) const;
  // residual: h1 [B, S, H]; normed2: pre_feedforward_layernorm_2(h1) as [T, H], computed once by the layer.
  MoeTrace moe(int64_t layer, const Array& residual, Array normed2, const Array& mlp_out,
               const IndexArray* replay_index, const RoutingPolicy* routing) const;
  PleTrace ple(int64_t layer, const Array& residual, const Array& per_layer_input) const;
  Array scale_by_layer_scalar(int64_t layer, const Array& h) const;
  LayerTrace decoder_layer(int64_t layer, const Array& h, const Array* per_layer_input, const ops::RotaryTables& rope,
                           const Array& mask, const KeyValue* shared, const IndexArray* replay_index,
                           const RoutingPolicy* routing) const;
  Array lm_head(const Array& hidden) const;
  Array final_logits(const Array& lm_head_out) const;  // softcapped when the config says so

  // Backward pieces at the exact math (gemma4_layer_backward.cpp): each takes its forward's input
  // and output gradient, returns its input gradient and adds its parameters' gradients to `params`.
  using ParamGrads = std::map<std::string, Array>;
  Array norm_backward(const std::string& module, const Array& x, const Array& dy, ParamGrads& params) const;
  Array linear_backward(const std::string& module, const Array& x, const Array& dy, ParamGrads& params) const;
  Array activation_backward(const Array& x, const Array& dy) const;
  // shared: a KV-shared layer's K/V, whose gradient goes to dshared; readers: the K/V gradients of
  // the layers that read this (source) layer's K/V, added to its own. Both as attention reads them.
  Array self_attn_backward(int64_t layer, const Array& x, const ops::RotaryTables& rope, const Array& mask,
                           const KeyValue* shared, const Array& dy, const KeyValue* readers, ParamGrads& params,
                           KeyValue* dshared) const;
  Array mlp_backward(int64_t layer, const Array& x, const Array& dy, ParamGrads& params) const;
  // x [T, H], the routed index; dweights, dprobs (either may be nullptr): the gradients of the
  // scaled top-k weights and of the probabilities.
  Array router_backward(int64_t layer, const Array& x, const IndexArray& index, const Array* dweights,
                        const Array* dprobs, ParamGrads& params) const;
  Array experts_backward(int64_t layer, const Array& x, const IndexArray& index, const Array& weights,
                         const Array& dy, Array& dweights, ParamGrads& params) const;
  struct LayerGrads {
    Array h;                // d layer input
    Array per_layer_input;  // PLE only
    KeyValue shared;        // KV-shared layers: d the source's K/V
  };
  LayerGrads decoder_layer_backward(int64_t layer, const Array& h, const Array* per_layer_input,
                                    const ops::RotaryTables& rope, const Array& mask, const KeyValue* shared,
                                    const LayerTrace& t, const Array& dout, const KeyValue* readers, ParamGrads& params,
                                    HookSink* passes) const;
  void forward_backward(const ForwardInputs& inputs, const Loss& loss, HookSink& sink,
                        const RoutingPolicy* routing) const override;

 private:
  bool replay_backward_layer_module(int64_t layer, const std::string& step, const std::string& m, const HookInputs& in,
                                    const GradInputs& grads, HookSink& sink) const;
  void replay_backward_router(int64_t layer, const std::string& m, const HookInputs& in, const GradInputs& grads,
                              HookSink& sink) const;
  void replay_backward_decoder_layer(int64_t layer, const std::string& m, const HookInputs& in,
                                     const GradInputs& grads, HookSink& sink) const;
  // HF's gradients of the K/V this layer's readers read (their self_attn@in.shared_kv_states),
  // summed; nullopt when no reader's gradient is stored.
  std::optional<KeyValue> readers_kv_grad(int64_t layer, const GradInputs& grads) const;
  void backward_norm(const std::string& m, bool weighted, const HookInputs& in, const GradInputs& grads,
                     HookSink& sink) const;
  void backward_linear(const std::string& m, const HookInputs& in, const GradInputs& grads, HookSink& sink) const;
  void replay_backward_self_attn(int64_t layer, const std::string& m, const HookInputs& in, const GradInputs& grads,
                                 HookSink& sink) const;
  // replay() by kind of step (gemma4_hooks.cpp); the bool ones return whether they knew the step.
  bool replay_model_level(const std::string& m, const HookInputs& in, HookSink& sink) const;
  bool replay_layer_module(int64_t layer, const std::string& step, const std::string& m, const HookInputs& in,
                           HookSink& sink) const;
  bool replay_inline_step(int64_t layer, const std::string& step, const std::string& m, const HookInputs& in,
                          HookSink& sink) const;
  bool replay_wiring_check(int64_t layer, const std::string& step, const std::string& m, const HookInputs& in,
                           HookSink& sink) const;
  void replay_self_attn(int64_t layer, const std::string& m, const HookInputs& in, HookSink& sink) const;
  void replay_decoder_layer(int64_t layer, const std::string& m, const HookInputs& in, HookSink& sink) const;

  std::string module_path(const std::string& name) const;  // "norm" -> "model.norm"
  // The stored name of a weight: the asked one, or the same under the other text prefix
  // ("model." <-> "model.language_model."), so either checkpoint layout serves either fixture.
  std::string stored_name(const std::string& name) const;
  std::shared_ptr<const Weight> weight(const std::string& name, const Shape& shape) const;
  Shape weight_shape(const std::string& module) const;  // a Linear's or RMSNorm's, by module path
  const Gemma4Layer& layer_config(int64_t layer) const;

  Gemma4Config config_;
  const WeightSource& weights_;
  Numerics numerics_;
  bool keep_weights_;
  Variants variants_;
  mutable std::map<std::string, std::shared_ptr<const Weight>> resident_;
};

}  // namespace parity
