#include "olmoe.h"

#include <algorithm>
#include <cmath>

#include "hf_config.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/experts.h"
#include "ops/linear.h"
#include "ops/norm.h"
#include "ops/router.h"

namespace parity {

namespace {

double rope_theta_of(const nlohmann::json& config) {
  if (config.contains("rope_parameters") && !config.at("rope_parameters").is_null()) {
    const nlohmann::json& rope = config.at("rope_parameters");
    PARITY_CHECK(rope.is_object(), "[config] rope_parameters must be an object, got {}", rope.dump());
    const std::string type = config_optional_string(rope, "rope_type").value_or("default");
    PARITY_CHECK(type == "default", "[config] olmoe rope_type \"{}\" is not implemented (default only)", type);
    return config_double(rope, "rope_theta");
  }
  // Hub configs saved before transformers v5 carry rope_theta (and rope_scaling) at the top level.
  PARITY_CHECK(!config.contains("rope_scaling") || config.at("rope_scaling").is_null(),
               "[config] olmoe rope_scaling {} is not implemented", config.value("rope_scaling", nlohmann::json()).dump());
  return config.contains("rope_theta") ? config_double(config, "rope_theta") : 10000.0;
}

// torch's clamp_ rounds its Python-float bounds to the tensor's dtype first (bf16 clips at ±bf16(c)).
void clamp(Array& a, std::optional<double> limit, const Numerics& numerics) {
  if (!limit) return;
  const double c = numerics.act(*limit);
  for (double& x : a.data) x = std::clamp(x, -c, c);
}

Array view_heads(Array a, int64_t heads, int64_t dim) {
  Shape shape{a.shape[0], a.shape[1], heads, dim};  // [B, S, N·D] -> [B, S, N, D]
  return reshaped(std::move(a), std::move(shape));
}

}  // namespace

OlmoeConfig OlmoeConfig::from_hf(const nlohmann::json& config) {
  OlmoeConfig c;
  c.vocab_size = config_int(config, "vocab_size");
  c.hidden_size = config_int(config, "hidden_size");
  c.intermediate_size = config_int(config, "intermediate_size");
  c.num_hidden_layers = config_int(config, "num_hidden_layers");
  c.num_attention_heads = config_int(config, "num_attention_heads");
  c.num_key_value_heads = config_optional_int(config, "num_key_value_heads").value_or(c.num_attention_heads);
  PARITY_CHECK(c.num_attention_heads > 0 && c.hidden_size % c.num_attention_heads == 0,
               "[config] hidden_size {} is not a multiple of num_attention_heads {}", c.hidden_size,
               c.num_attention_heads);
  c.head_dim = config_optional_int(config, "head_dim").value_or(c.hidden_size / c.num_attention_heads);
  PARITY_CHECK(c.head_dim == c.hidden_size / c.num_attention_heads,
               "[config] head_dim {} != hidden_size / num_attention_heads: OlmoeAttention's q_norm width assumes it",
               c.head_dim);
  PARITY_CHECK(c.num_key_value_heads > 0 && c.num_attention_heads % c.num_key_value_heads == 0,
               "[config] num_attention_heads {} is not a multiple of num_key_value_heads {}", c.num_attention_heads,
               c.num_key_value_heads);
  c.num_experts = config_int(config, "num_experts");
  c.num_experts_per_tok = config_int(config, "num_experts_per_tok");
  PARITY_CHECK(c.num_experts_per_tok > 0 && c.num_experts_per_tok <= c.num_experts,
               "[config] num_experts_per_tok {} outside 1..num_experts {}", c.num_experts_per_tok, c.num_experts);
  c.rms_norm_eps = config_double(config, "rms_norm_eps");
  c.rope_theta = rope_theta_of(config);
  c.norm_topk_prob = config_bool(config, "norm_topk_prob");
  c.tie_word_embeddings = config_optional_bool(config, "tie_word_embeddings").value_or(false);
  c.clip_qkv = config_optional_double(config, "clip_qkv");
  c.pad_token_id = config_optional_int(config, "pad_token_id");
  c.hidden_act = ops::activation_from_hf(config_optional_string(config, "hidden_act").value_or("silu"));
  PARITY_CHECK(!config_optional_bool(config, "attention_bias").value_or(false),
               "[config] olmoe attention_bias=true is not implemented");
  return c;
}

nlohmann::ordered_json OlmoeConfig::resolved() const {
  return {{"vocab_size", vocab_size},
          {"hidden_size", hidden_size},
          {"intermediate_size", intermediate_size},
          {"num_hidden_layers", num_hidden_layers},
          {"num_attention_heads", num_attention_heads},
          {"num_key_value_heads", num_key_value_heads},
          {"head_dim", head_dim},
          {"num_experts", num_experts},
          {"num_experts_per_tok", num_experts_per_tok},
          {"rms_norm_eps", rms_norm_eps},
          {"rope_theta", rope_theta},
          {"norm_topk_prob", norm_topk_prob},
          {"tie_word_embeddings", tie_word_embeddings},
          {"clip_qkv", clip_qkv ? nlohmann::ordered_json(*clip_qkv) : nlohmann::ordered_json()},
          {"hidden_act", hidden_act == ops::Activation::kSilu ? "silu" : "gelu_pytorch_tanh"}};
}

Olmoe::Olmoe(OlmoeConfig config, const WeightSource& weights, Numerics numerics, bool keep_weights, Variants variants)
    : config_(config), weights_(weights), numerics_(numerics), keep_weights_(keep_weights), variants_(variants) {}

std::string Olmoe::layer_prefix(int64_t layer) const {
  PARITY_CHECK(layer >= 0 && layer < config_.num_hidden_layers, "[olmoe] layer {} outside 0..{}", layer,
               config_.num_hidden_layers - 1);
  return fmt::format("model.layers.{}.", layer);
}

std::shared_ptr<const Weight> Olmoe::weight(const std::string& name, const Shape& shape) const {
  if (auto it = resident_.find(name); it != resident_.end()) return it->second;
  auto w = std::make_shared<const Weight>(expect_weight(weights_, name, shape));
  if (keep_weights_) resident_.emplace(name, w);
  return w;
}

Shape Olmoe::weight_shape(const std::string& module) const {
  const OlmoeConfig& c = config_;
  const std::string suffix = module.substr(module.rfind('.') + 1);
  const int64_t q_width = c.num_attention_heads * c.head_dim, kv_width = c.num_key_value_heads * c.head_dim;
  if (suffix == "q_proj") return {q_width, c.hidden_size};
  if (suffix == "k_proj" || suffix == "v_proj") return {kv_width, c.hidden_size};
  if (suffix == "o_proj") return {c.hidden_size, q_width};
  if (suffix == "q_norm") return {q_width};
  if (suffix == "k_norm") return {kv_width};
  if (suffix == "lm_head") return {c.vocab_size, c.hidden_size};
  if (suffix == "input_layernorm" || suffix == "post_attention_layernorm" || suffix == "norm") return {c.hidden_size};
  throw Error(fmt::format("[olmoe] no weight shape known for module {}", module));
}

Array Olmoe::embed_tokens(const IndexArray& input_ids) const {
  return ops::embedding(input_ids, *weight("model.embed_tokens.weight", {config_.vocab_size, config_.hidden_size}));
}

ops::RotaryTables Olmoe::rotary_emb(const IndexArray& position_ids) const {
  return ops::rotary_tables(position_ids, ops::default_inv_freq(config_.head_dim, config_.rope_theta, numerics_),
                            /*attention_scaling=*/1.0, numerics_);
}

Array Olmoe::norm(const std::string& module, const Array& x) const {
  const auto w = weight(module + ".weight", weight_shape(module));
  // rmsnorm_one_plus_weight: (1 + w) * x_hat.to(dtype), 1 + w in the weight's dtype.
  const double offset = variants_.has(Variant::kRmsNormOnePlusWeight) ? 1.0 : 0.0;
  return ops::rms_norm(x, w.get(), config_.rms_norm_eps, ops::NormWeight::kAfterCast, numerics_, module, offset);
}

Array Olmoe::linear(const std::string& module, const Array& x) const {
  const bool tied_head = module == "lm_head" && config_.tie_word_embeddings;
  const std::string name = tied_head ? "model.embed_tokens.weight" : module + ".weight";
  return ops::linear(x, *weight(name, weight_shape(module)), numerics_, module);
}

Olmoe::AttentionTrace Olmoe::self_attn(int64_t layer, const Array& x, const ops::RotaryTables& rope,
                                       const Array& mask) const {
  const std::string p = layer_prefix(layer) + "self_attn.";
  AttentionTrace t;
  t.q_proj = linear(p + "q_proj", x);
  t.q_norm = norm(p + "q_norm", t.q_proj);  // over all Nh·D columns, before the head split
  t.k_proj = linear(p + "k_proj", x);
  t.k_norm = norm(p + "k_norm", t.k_proj);
  t.v_proj = linear(p + "v_proj", x);
  Array q = t.q_norm, k = t.k_norm, v = t.v_proj;
  clamp(q, config_.clip_qkv, numerics_);  // HF clamps in place after the hooks saw the unclipped values
  clamp(k, config_.clip_qkv, numerics_);
  clamp(v, config_.clip_qkv, numerics_);
  q = view_heads(std::move(q), config_.num_attention_heads, config_.head_dim);
  k = view_heads(std::move(k), config_.num_key_value_heads, config_.head_dim);
  v = view_heads(std::move(v), config_.num_key_value_heads, config_.head_dim);
  ops::apply_rope(q, rope, numerics_);
  ops::apply_rope(k, rope, numerics_);
  const double scaling = numerics_.f32(std::pow(static_cast<double>(config_.head_dim), -0.5));  // a Python float
  ops::AttentionResult a = ops::attention(q, k, v, mask, scaling, numerics_);
  t.context = std::move(a.context);
  t.probs = std::move(a.probs);
  t.out = linear(p + "o_proj", t.context);
  return t;
}

Olmoe::RouterTrace Olmoe::gate(int64_t layer, const Array& x, const IndexArray* replay_index,
                               const RoutingPolicy* routing) const {
  const OlmoeConfig& c = config_;
  RouterTrace t;
  t.logits = ops::linear(x, *weight(layer_prefix(layer) + "mlp.gate.weight", {c.num_experts, c.hidden_size}),
                         numerics_, "mlp.gate");
  t.probs = ops::router_probs(t.logits, numerics_);
  t.top_k_index = ops::top_k_rows(t.probs, c.num_experts_per_tok);
  if (replay_index) t.routed = *replay_index;
  else if (routing) t.routed = routing->resolve(layer_prefix(layer) + "mlp.gate", t.top_k_index, t.probs);
  else t.routed = t.top_k_index;
  // olmoe_router_topk_softmax: the same experts, weighted by a softmax over their logits alone.
  t.top_k_weights = variants_.has(Variant::kOlmoeRouterTopkSoftmax)
                        ? ops::softmax_top_k_logits(t.logits, t.routed, c.norm_topk_prob, numerics_)
                        : ops::gather_top_k(t.probs, t.routed, c.norm_topk_prob, numerics_);
  numerics_.act_sum(t.top_k_weights, c.num_experts);  // router_top_value.to(router_logits.dtype)
  return t;
}

Array Olmoe::experts(int64_t layer, const Array& x, const IndexArray& index, const Array& weights) const {
  const OlmoeConfig& c = config_;
  const std::string p = layer_prefix(layer) + "mlp.experts.";
  const auto gate_up = weight(p + "gate_up_proj", {c.num_experts, 2 * c.intermediate_size, c.hidden_size});
  const auto down = weight(p + "down_proj", {c.num_experts, c.hidden_size, c.intermediate_size});
  return ops::experts(x, index, weights, {*gate_up, *down}, c.hidden_act, numerics_);
}

Olmoe::LayerTrace Olmoe::decoder_layer(int64_t layer, const Array& h, const ops::RotaryTables& rope,
                                       const Array& mask, const IndexArray* replay_index,
                                       const RoutingPolicy* routing) const {
  const std::string p = layer_prefix(layer);
  LayerTrace t;
  t.input_layernorm = norm(p + "input_layernorm", h);
  t.attn = self_attn(layer, t.input_layernorm, rope, mask);
  t.residual = ops::add(h, t.attn.out, numerics_, "attention residual");
  t.post_attention_layernorm = norm(p + "post_attention_layernorm", t.residual);
  const Array tokens = reshaped(t.post_attention_layernorm, {h.rows(), config_.hidden_size});
  t.router = gate(layer, tokens, replay_index, routing);
  t.experts = experts(layer, tokens, t.router.routed, t.router.top_k_weights);
  t.out = ops::add(t.residual, reshaped(t.experts, h.shape), numerics_, "experts residual");
  return t;
}

}  // namespace parity
