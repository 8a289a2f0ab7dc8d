// OLMoE (OlmoeForCausalLM, transformers v5.15.0 modeling_olmoe.py) wired from shared ops.
// Per layer (h is the residual stream, [B, S, H]):
//   x  = input_layernorm(h)
//   q  = q_norm(q_proj(x)) over all Nh·D columns, k = k_norm(k_proj(x)) over Nkv·D, v = v_proj(x)
//   clip_qkv: clamp q, k, v to [-c, c]; then RoPE on q, k; causal GQA attention, scaling D^-½
//   h1 = h + o_proj(attention)
//   y  = post_attention_layernorm(h1);  router: softmax over ALL experts (fp32), top-k,
//        renormalise only if norm_topk_prob;  h2 = h1 + experts(y, top-k)
// then model.norm and an untied lm_head. Norms multiply the weight after the cast back (kAfterCast).
// Variants (variants.h) that apply: olmoe_router_topk_softmax (gate), rmsnorm_one_plus_weight (norm).
#pragma once

#include <map>
#include <memory>
#include <optional>

#include "model.h"
#include "ops/activation.h"
#include "variants.h"
#include "ops/rope.h"

namespace parity {

struct OlmoeConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;         // H
  int64_t intermediate_size = 0;   // I, per expert
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0; // Nh
  int64_t num_key_value_heads = 0; // Nkv (config null -> Nh)
  int64_t head_dim = 0;            // D = H / Nh unless the config names one
  int64_t num_experts = 0;         // E
  int64_t num_experts_per_tok = 0; // K
  double rms_norm_eps = 0;
  double rope_theta = 0;
  bool norm_topk_prob = false;
  bool tie_word_embeddings = false;
  std::optional<int64_t> pad_token_id;  // nn.Embedding's padding_idx: that row gets no gradient
  std::optional<double> clip_qkv;
  ops::Activation hidden_act = ops::Activation::kSilu;

  // Refuses configs the reference would get wrong silently (bias, rope scaling, other dims).
  static OlmoeConfig from_hf(const nlohmann::json& config);
  // Every field above as JSON: two configs compute the same model iff these are equal.
  nlohmann::ordered_json resolved() const;
};

class Olmoe final : public ReferenceModel {
 public:
  // keep_weights: hold every weight once read (repeated forwards, like an in-memory HF model);
  // otherwise each module reads its weights when it runs and drops them (large checkpoints).
  // variants: known bugs to reproduce (variants.h); the default is HF's math.
  Olmoe(OlmoeConfig config, const WeightSource& weights, Numerics numerics, bool keep_weights = false,
        Variants variants = {});

  std::vector<std::string> modules() const override;
  void replay(const std::string& module, const HookInputs& inputs, HookSink& sink) const override;
  void forward(const ForwardInputs& inputs, HookSink& sink, const RoutingPolicy* routing) const override;
  // Leaf modules (olmoe_backward.cpp): embeddings, every norm, every projection and the head, the
  // router and the experts.
  void replay_backward(const std::string& module, const HookInputs& inputs, const GradInputs& grads,
                       HookSink& sink) const override;
  void forward_backward(const ForwardInputs& inputs, const Loss& loss, HookSink& sink,
                        const RoutingPolicy* routing) const override;

  // Intermediates of one module, kept so forward() can emit every hook of the layer.
  struct AttentionTrace {
    Array q_proj, q_norm, k_proj, k_norm, v_proj;
    Array context;  // o_proj input, [B, S, Nh·D]
    Array probs;    // attn_weights, [B, Nh, S, S]
    Array out;      // o_proj output
  };
  struct RouterTrace {
    Array logits, probs;  // [T, E]
    IndexArray top_k_index;  // the reference's own choice
    IndexArray routed;       // what the experts use: own, replayed (isolated) or tie-resolved (chained)
    Array top_k_weights;     // at `routed`, cast to T
  };
  struct LayerTrace {
    Array input_layernorm;
    AttentionTrace attn;
    Array residual;  // h1 = h + attention: post_attention_layernorm's input
    Array post_attention_layernorm;
    RouterTrace router;
    Array experts;  // [T, H]
    Array out;      // [B, S, H]
  };

  Array embed_tokens(const IndexArray& input_ids) const;
  ops::RotaryTables rotary_emb(const IndexArray& position_ids) const;
  Array norm(const std::string& module, const Array& x) const;    // any OlmoeRMSNorm, by module path
  Array linear(const std::string& module, const Array& x) const;  // any bias-free Linear, by module path
  AttentionTrace self_attn(int64_t layer, const Array& x, const ops::RotaryTables& rope, const Array& mask) const;
  // x [T, H]. replay_index: HF's top-k to use instead of the reference's own (routing replay);
  // otherwise routing (if any) may resolve near-ties.
  RouterTrace gate(int64_t layer, const Array& x, const IndexArray* replay_index, const RoutingPolicy* routing) const;
  Array experts(int64_t layer, const Array& x, const IndexArray& index, const Array& weights) const;
  LayerTrace decoder_layer(int64_t layer, const Array& h, const ops::RotaryTables& rope, const Array& mask,
                           const IndexArray* replay_index, const RoutingPolicy* routing) const;

 private:
  std::string layer_prefix(int64_t layer) const;
  // Backward pieces (olmoe_backward.cpp): each takes its forward's values and output gradient,
  // returns the input gradient and adds its parameters' gradients to `params` (by HF name).
  using ParamGrads = std::map<std::string, Array>;
  Array norm_backward(const std::string& module, const Array& x, const Array& dy, ParamGrads& params) const;
  Array linear_backward(const std::string& module, const Array& x, const Array& dy, ParamGrads& params) const;
  // The router from the top-k weights' gradient (and the logits', when a loss reads them).
  Array gate_backward(int64_t layer, const Array& x, const IndexArray& routed, const Array& dweights,
                      const Array* dlogits, ParamGrads& params) const;
  // The experts: returns dx; the routing weights' gradient goes to `dweights`.
  Array experts_backward(int64_t layer, const Array& x, const IndexArray& index, const Array& weights, const Array& dy,
                         Array& dweights, ParamGrads& params) const;
  // HF's own q_norm, k_norm and v_proj outputs before clip_qkv's clamp: an isolated backward takes
  // the clamp's pass-or-block decision from them, as it takes HF's routing (in bf16 one rounding can
  // move a value across the clip, and the decision then moves that element's whole gradient).
  struct HfClamp {
    Array q_norm, k_norm, v_proj;
  };
  Array self_attn_backward(int64_t layer, const Array& x, const ops::RotaryTables& rope, const Array& mask,
                           const Array& dy, ParamGrads& params, const HfClamp* hf_clamp = nullptr) const;
  // The HfClamp of `attn` (a self_attn module path) from HF's hooks; nullopt without clip_qkv.
  std::optional<HfClamp> hf_clamp(const HookInputs& in, const std::string& attn) const;
  // OlmoeSparseMoeBlock from its [B, S, H] input, its router trace and output gradient; `passes`
  // (chained) receives the output gradients of the experts and the router weights.
  Array moe_backward(int64_t layer, const Array& x, const RouterTrace& router, const Array& dy, ParamGrads& params,
                     HookSink* passes) const;
  // OlmoeDecoderLayer from its input h, its forward trace and output gradient; `passes` (chained)
  // also receives the attention block's output gradient.
  Array decoder_layer_backward(int64_t layer, const Array& h, const LayerTrace& t, const ops::RotaryTables& rope,
                               const Array& mask, const Array& dh, ParamGrads& params, HookSink* passes,
                               const HfClamp* hf_clamp = nullptr) const;
  std::shared_ptr<const Weight> weight(const std::string& name, const Shape& shape) const;
  Shape weight_shape(const std::string& module) const;  // from the config, by module path

  OlmoeConfig config_;
  const WeightSource& weights_;
  Numerics numerics_;
  bool keep_weights_;
  Variants variants_;
  mutable std::map<std::string, std::shared_ptr<const Weight>> resident_;
};

}  // namespace parity
