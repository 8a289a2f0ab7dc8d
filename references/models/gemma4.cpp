#include "gemma4.h"

#include <cmath>

#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/experts.h"
#include "ops/linear.h"
#include "ops/logits.h"
#include "ops/norm.h"
#include "ops/router.h"

namespace parity {

namespace {

constexpr std::string_view kTextPrefix = "model.";
constexpr std::string_view kMultimodalTextPrefix = "model.language_model.";

Array view_heads(Array a, int64_t heads, int64_t dim) {
  Shape shape{a.shape[0], a.shape[1], heads, dim};  // [B, S, N·d] -> [B, S, N, d]
  return reshaped(std::move(a), std::move(shape));
}

std::string suffix_of(const std::string& module) { return module.substr(module.rfind('.') + 1); }

}  // namespace

Gemma4::Gemma4(Gemma4Config config, const WeightSource& weights, Numerics numerics, bool keep_weights,
               Variants variants)
    : config_(std::move(config)),
      weights_(weights),
      numerics_(numerics),
      keep_weights_(keep_weights),
      variants_(variants) {}

const Gemma4Layer& Gemma4::layer_config(int64_t layer) const {
  PARITY_CHECK(layer >= 0 && layer < config_.num_hidden_layers, "[gemma4] layer {} outside 0..{}", layer,
               config_.num_hidden_layers - 1);
  return config_.layers[static_cast<size_t>(layer)];
}

std::string Gemma4::layer_prefix(int64_t layer) const {
  layer_config(layer);  // range check
  return fmt::format("{}layers.{}.", config_.module_prefix, layer);
}

std::string Gemma4::module_path(const std::string& name) const { return config_.module_prefix + name; }

std::string Gemma4::stored_name(const std::string& name) const {
  if (weights_.has(name)) return name;
  std::string other;
  if (name.starts_with(kMultimodalTextPrefix)) other = std::string(kTextPrefix) + name.substr(kMultimodalTextPrefix.size());
  else if (name.starts_with(kTextPrefix)) other = std::string(kMultimodalTextPrefix) + name.substr(kTextPrefix.size());
  return !other.empty() && weights_.has(other) ? other : name;  // absent either way: the error names `name`
}

std::shared_ptr<const Weight> Gemma4::weight(const std::string& name, const Shape& shape) const {
  if (auto it = resident_.find(name); it != resident_.end()) return it->second;
  auto w = std::make_shared<const Weight>(expect_weight(weights_, stored_name(name), shape));
  if (keep_weights_) resident_.emplace(name, w);
  return w;
}

Shape Gemma4::weight_shape(const std::string& module) const {
  const Gemma4Config& c = config_;
  const std::string s = suffix_of(module);
  const int64_t all_layers_ple = c.num_hidden_layers * c.hidden_size_per_layer_input;
  if (s == "lm_head") return {c.vocab_size, c.hidden_size};
  if (s == "per_layer_model_projection") return {all_layers_ple, c.hidden_size};
  if (s == "per_layer_projection_norm") return {c.hidden_size_per_layer_input};
  const int64_t layer = decoder_layer_of(module);
  if (layer < 0) {
    PARITY_CHECK(s == "norm", "[gemma4] no weight shape known for module {}", module);
    return {c.hidden_size};
  }
  const Gemma4Layer& l = layer_config(layer);
  const int64_t q_width = c.num_attention_heads * l.head_dim, kv_width = l.num_key_value_heads * l.head_dim;
  if (s == "q_proj") return {q_width, c.hidden_size};
  if (s == "k_proj" || s == "v_proj") return {kv_width, c.hidden_size};
  if (s == "o_proj") return {c.hidden_size, q_width};
  if (s == "q_norm" || s == "k_norm") return {l.head_dim};
  if (s == "gate_proj" || s == "up_proj") return {l.intermediate_size, c.hidden_size};
  if (s == "down_proj") return {c.hidden_size, l.intermediate_size};
  if (s == "per_layer_input_gate") return {c.hidden_size_per_layer_input, c.hidden_size};
  if (s == "per_layer_projection") return {c.hidden_size, c.hidden_size_per_layer_input};
  if (s == "proj") return {c.num_experts, c.hidden_size};  // router.proj
  PARITY_CHECK(s.ends_with("layernorm") || s.ends_with("layernorm_1") || s.ends_with("layernorm_2") ||
                   s == "post_per_layer_input_norm",
               "[gemma4] no weight shape known for module {}", module);
  return {c.hidden_size};
}

// --- model level -----------------------------------------------------------------------------------

// Gemma4TextScaledWordEmbedding: embed_scale (float32 √dim) is cast to the weight's dtype, which is
// the run dtype T (bf16: √2816 = 53.07 -> 53.0). gemma4_embed_scale_not_bf16: the float32 scale
// itself (torch multiplies a bf16 tensor by a float32 0-d tensor in float, then rounds).
double Gemma4::embed_scale(int64_t dim) const {
  const double scale = std::sqrt(static_cast<double>(dim));
  return variants_.has(Variant::kGemma4EmbedScaleNotBf16) ? numerics_.f32(scale) : numerics_.act(scale);
}

Array Gemma4::embed_tokens(const IndexArray& input_ids) const {
  const auto table = weight(module_path("embed_tokens.weight"), {config_.vocab_size, config_.hidden_size});
  return ops::scale(ops::embedding(input_ids, *table), embed_scale(config_.hidden_size), numerics_);
}

Array Gemma4::embed_tokens_per_layer(const IndexArray& input_ids) const {
  const Gemma4Config& c = config_;
  const auto table = weight(module_path("embed_tokens_per_layer.weight"),
                            {c.vocab_size_per_layer_input, c.num_hidden_layers * c.hidden_size_per_layer_input});
  return ops::scale(ops::embedding(input_ids, *table), embed_scale(c.hidden_size_per_layer_input), numerics_);
}

Array Gemma4::per_layer_norm_input(const Array& projection) const {
  const Gemma4Config& c = config_;
  PARITY_CHECK(projection.shape.size() == 3, "[gemma4] per_layer_model_projection output {} is not [B, S, L·P]",
               shape_str(projection.shape));
  // per_layer_model_projection_scale = H^-½, applied outside the Linear.
  Array scaled = ops::scale(projection, std::pow(static_cast<double>(c.hidden_size), -0.5), numerics_);
  return reshaped(std::move(scaled), {projection.shape[0], projection.shape[1], c.num_hidden_layers,
                                      c.hidden_size_per_layer_input});
}

Array Gemma4::combine_per_layer_inputs(const Array& norm, const Array& tokens) const {
  const Array token_part = reshaped(tokens, norm.shape);  // layer-major: layer i owns columns [i·P, (i+1)·P)
  return ops::scale(ops::add(norm, token_part, numerics_, "per-layer inputs"), std::pow(2.0, -0.5), numerics_);
}

Array Gemma4::per_layer_input(const Array& combined, int64_t layer) {
  PARITY_CHECK(combined.shape.size() == 4 && layer >= 0 && layer < combined.shape[2],
               "[gemma4] per-layer inputs {} have no layer {}", shape_str(combined.shape), layer);
  const int64_t tokens = combined.shape[0] * combined.shape[1], layers = combined.shape[2], width = combined.shape[3];
  Array out({combined.shape[0], combined.shape[1], width});
  for (int64_t t = 0; t < tokens; ++t)
    std::copy_n(combined.data.data() + (t * layers + layer) * width, width, out.row(t));
  return out;
}

Gemma4::PerLayerInputs Gemma4::per_layer_inputs(const IndexArray& input_ids, const Array& embeds) const {
  PerLayerInputs p;
  p.tokens = embed_tokens_per_layer(input_ids);
  p.projection = linear(module_path("per_layer_model_projection"), embeds);
  p.norm_in = per_layer_norm_input(p.projection);
  p.norm = norm(module_path("per_layer_projection_norm"), p.norm_in);
  p.combined = combine_per_layer_inputs(p.norm, p.tokens);
  return p;
}

ops::RotaryTables Gemma4::rotary_emb(const IndexArray& position_ids, const std::string& layer_type) const {
  auto it = config_.rope.find(layer_type);
  PARITY_CHECK(it != config_.rope.end(), "[gemma4] no layer of type {} (no rotary table)", layer_type);
  const Gemma4Rope& r = it->second;
  const std::vector<double> inv_freq =
      r.rope_type == "proportional"
          ? ops::proportional_inv_freq(r.head_dim, r.rope_theta, r.partial_rotary_factor, r.factor, numerics_)
          : ops::default_inv_freq(r.head_dim, r.rope_theta, numerics_);
  return ops::rotary_tables(position_ids, inv_freq, /*attention_scaling=*/1.0, numerics_);
}

Array Gemma4::attention_mask(const IndexArray& padding, const std::string& layer_type) const {
  const bool sliding = layer_type == kSlidingAttention;
  return ops::causal_mask(padding, sliding ? config_.sliding_window : std::nullopt, numerics_);
}

// --- modules -----------------------------------------------------------------------------------------

Array Gemma4::norm(const std::string& module, const Array& x) const {
  const auto w = weight(module + ".weight", weight_shape(module));
  // rmsnorm_one_plus_weight: x_hat_f32 * (1 + w.float()), Gemma 1-3's norm.
  const double offset = variants_.has(Variant::kRmsNormOnePlusWeight) ? 1.0 : 0.0;
  return ops::rms_norm(x, w.get(), config_.rms_norm_eps, ops::NormWeight::kInFloat32, numerics_, module, offset,
                       norm_arithmetic());
}

// gemma4_rmsnorm_bf16: every norm, with a weight or without, computed in the activation dtype.
ops::NormArithmetic Gemma4::norm_arithmetic() const {
  return variants_.has(Variant::kGemma4RmsNormBf16) ? ops::NormArithmetic::kActivation : ops::NormArithmetic::kFloat32;
}

void Gemma4::rotate(int64_t layer, Array& x, const ops::RotaryTables& rope) const {
  if (variants_.has(Variant::kGemma4RopeContiguousPartial)) {
    // Megatron's partial RoPE on proportional partial-rotary layers: 2A contiguous dims, pairs (j, j + A).
    const Gemma4Layer& l = layer_config(layer);
    const Gemma4Rope& r = config_.rope.at(l.layer_type);
    if (r.rope_type == "proportional" && r.partial_rotary_factor < 1.0)
      return ops::apply_rope_contiguous_partial(
          x, rope, ops::proportional_rotated_angles(l.head_dim, r.partial_rotary_factor), numerics_);
  }
  ops::apply_rope(x, rope, numerics_);
}

Array Gemma4::norm_without_scale(const Array& x) const {
  return ops::rms_norm(x, nullptr, config_.rms_norm_eps, ops::NormWeight::kNone, numerics_, "norm without scale",
                       0.0, norm_arithmetic());
}

Array Gemma4::linear(const std::string& module, const Array& x) const {
  const bool tied_head = module == "lm_head" && config_.tie_word_embeddings;
  const std::string name = tied_head ? module_path("embed_tokens.weight") : module + ".weight";
  return ops::linear(x, *weight(name, weight_shape(module)), numerics_, module);
}

Array Gemma4::activation(const Array& x) const {
  Array y = x;
  for (double& v : y.data) v = ops::activate(config_.hidden_activation, v, numerics_);
  return y;
}

Gemma4::AttentionTrace Gemma4::self_attn(int64_t layer, const Array& x, const ops::RotaryTables& rope,
                                         const Array& mask, const KeyValue* shared) const {
  const Gemma4Layer& l = layer_config(layer);
  const std::string p = layer_prefix(layer) + "self_attn.";
  const int64_t heads = config_.num_attention_heads, kv_heads = l.num_key_value_heads, dim = l.head_dim;
  AttentionTrace t;
  t.q_proj = linear(p + "q_proj", x);
  t.q_norm = norm(p + "q_norm", view_heads(t.q_proj, heads, dim));  // per head, one [d] weight
  Array q = t.q_norm;
  rotate(layer, q, rope);
  if (l.kv_shared) {
    PARITY_CHECK(shared != nullptr, "[gemma4] layer {} shares K/V but none were given", layer);
    t.kv = *shared;
  } else {
    t.k_proj = linear(p + "k_proj", x);
    Array k_raw = view_heads(t.k_proj, kv_heads, dim);
    if (!l.k_eq_v) t.v_proj = linear(p + "v_proj", x);
    t.k_norm = norm(p + "k_norm", k_raw);
    Array key = t.k_norm;
    rotate(layer, key, rope);
    // k_eq_v: the values are the raw k_proj output (before k_norm and RoPE);
    // gemma4_k_eq_v_after_norm_and_rope: the finished keys instead.
    if (!l.k_eq_v) t.v_norm_in = view_heads(t.v_proj, kv_heads, dim);
    else if (variants_.has(Variant::kGemma4KEqVAfterNormRope)) t.v_norm_in = key;
    else t.v_norm_in = std::move(k_raw);
    t.v_norm = norm_without_scale(t.v_norm_in);
    t.kv = {std::move(key), t.v_norm};
  }
  PARITY_CHECK(t.kv.key.shape.size() == 4 && t.kv.key.shape[2] == kv_heads && t.kv.key.shape[3] == dim,
               "[gemma4] layer {} attends with {} KV heads of dim {}, but its K is {}", layer, kv_heads, dim,
               shape_str(t.kv.key.shape));
  // scaling 1.0: Gemma-4 has no 1/√d and no query_pre_attn_scalar (q_norm and k_norm set the scale).
  // gemma4_attention_scale_inv_sqrt_d: head_dim^-½, a Python float (float32 against the scores).
  const double scaling = variants_.has(Variant::kGemma4AttentionScaleInvSqrtD)
                             ? numerics_.f32(std::pow(static_cast<double>(dim), -0.5))
                             : 1.0;
  const ops::SoftmaxArithmetic softmax = variants_.has(Variant::kGemma4AttentionSoftmaxBf16)
                                             ? ops::SoftmaxArithmetic::kActivation
                                             : ops::SoftmaxArithmetic::kFloat32;
  ops::AttentionResult a = ops::attention(q, t.kv.key, t.kv.value, mask, scaling, numerics_, softmax);
  t.context = std::move(a.context);
  t.probs = std::move(a.probs);
  t.out = linear(p + "o_proj", t.context);
  return t;
}

Gemma4::MlpTrace Gemma4::mlp(int64_t layer, const Array& x) const {
  const std::string p = layer_prefix(layer) + "mlp.";
  MlpTrace t;
  t.gate_proj = linear(p + "gate_proj", x);
  t.act_fn = activation(t.gate_proj);
  t.up_proj = linear(p + "up_proj", x);
  t.down_proj_in = ops::multiply(t.act_fn, t.up_proj, numerics_, "mlp act_fn(gate) * up");
  t.down_proj = linear(p + "down_proj", t.down_proj_in);
  return t;
}

Array Gemma4::router_proj_input(int64_t layer, const Array& normed) const {
  // gemma4_router_folded_bf16: scale and H^-½ live in router_proj's weight, proj reads the norm.
  if (variants_.has(Variant::kGemma4RouterFoldedBf16)) return normed;
  const auto scale = weight(layer_prefix(layer) + "router.scale", {config_.hidden_size});
  // hidden_states * self.scale * self.scalar_root_size: left to right, each product in T.
  const Array scaled = ops::multiply_last_dim(normed, *scale, numerics_, "router.scale");
  return ops::scale(scaled, std::pow(static_cast<double>(config_.hidden_size), -0.5), numerics_);
}

Array Gemma4::router_proj(int64_t layer, const Array& proj_in) const {
  const std::string m = layer_prefix(layer) + "router.proj";
  if (!variants_.has(Variant::kGemma4RouterFoldedBf16)) return linear(m, proj_in);
  // gemma4_router_folded_bf16: W · (scale · H^-½) folded into the weight, stored in bfloat16.
  const auto w = weight(m + ".weight", weight_shape(m));
  const auto scale = weight(layer_prefix(layer) + "router.scale", {config_.hidden_size});
  const Weight folded = ops::fold_scale_bf16(*w, *scale, std::pow(static_cast<double>(config_.hidden_size), -0.5));
  return ops::linear(proj_in, folded, numerics_, m);
}

namespace {

// top_k_weights /= top_k_weights.sum(-1, keepdim=True) on a bf16 tensor: the sum accumulated in
// float and rounded once, each quotient rounded (gemma4_router_bf16).
void renormalise_in_act_dtype(Array& weights, const Numerics& numerics) {
  for (int64_t t = 0; t < weights.rows(); ++t) {
    double* row = weights.row(t);
    const double sum = numerics.act_sum(numerics.sum(row, weights.last_dim()), weights.last_dim());
    for (int64_t j = 0; j < weights.last_dim(); ++j) row[j] = numerics.act(row[j] / sum);
  }
}

}  // namespace

Gemma4::RouterTrace Gemma4::router(int64_t layer, const Array& x, const IndexArray* replay_index,
                                   const RoutingPolicy* routing) const {
  const Gemma4Config& c = config_;
  const std::string p = layer_prefix(layer) + "router";
  RouterTrace t;
  t.norm = norm_without_scale(x);
  t.proj_in = router_proj_input(layer, t.norm);
  t.logits = router_proj(layer, t.proj_in);
  t.probs = ops::router_probs(t.logits, numerics_);  // float32 softmax over ALL experts (v5.13+)
  // gemma4_router_bf16: softmax(scores) without dtype=float32 (computed in float, rounded to bf16),
  // so the choice, the renormalisation and the scale all see bf16 probabilities and round in bf16.
  const bool in_bf16 = variants_.has(Variant::kGemma4RouterBf16);
  if (in_bf16) numerics_.act_sum(t.probs, c.num_experts);
  t.top_k_index = ops::top_k_rows(t.probs, c.top_k_experts);
  if (replay_index) t.routed = *replay_index;
  else if (routing) t.routed = routing->resolve(p, t.top_k_index, t.probs);
  else t.routed = t.top_k_index;
  // Always renormalised, then times per_expert_scale (so the weights need not sum to 1); float32.
  t.top_k_weights = ops::gather_top_k(t.probs, t.routed, /*renormalise=*/!in_bf16, numerics_);
  if (in_bf16) renormalise_in_act_dtype(t.top_k_weights, numerics_);
  const auto per_expert_scale = weight(p + ".per_expert_scale", {c.num_experts});
  for (int64_t i = 0; i < t.top_k_weights.numel(); ++i) {
    const double scaled = t.top_k_weights.data[i] * per_expert_scale->data[static_cast<size_t>(t.routed.data[i])];
    t.top_k_weights.data[i] = in_bf16 ? numerics_.act(scaled) : numerics_.f32(scaled);
  }
  return t;
}

Array Gemma4::experts(int64_t layer, const Array& x, const IndexArray& index, const Array& weights) const {
  const Gemma4Config& c = config_;
  const std::string p = layer_prefix(layer) + "experts.";
  const auto gate_up = weight(p + "gate_up_proj", {c.num_experts, 2 * c.moe_intermediate_size, c.hidden_size});
  const auto down = weight(p + "down_proj", {c.num_experts, c.hidden_size, c.moe_intermediate_size});
  return ops::experts(x, index, weights, {*gate_up, *down}, c.hidden_activation, numerics_);
}

Gemma4::MoeTrace Gemma4::moe(int64_t layer, const Array& residual, Array normed2, const Array& mlp_out,
                             const IndexArray* replay_index, const RoutingPolicy* routing) const {
  const std::string p = layer_prefix(layer);
  MoeTrace t;
  t.post_feedforward_layernorm_1 = norm(p + "post_feedforward_layernorm_1", mlp_out);
  // The router sees the un-normed residual h1 (gemma4_router_on_normed_input: pre_feedforward_layernorm_2's
  // output); the experts see pre_feedforward_layernorm_2(h1).
  t.pre_feedforward_layernorm_2 = std::move(normed2);
  t.router_in = variants_.has(Variant::kGemma4RouterOnNormedInput)
                    ? t.pre_feedforward_layernorm_2
                    : reshaped(residual, {residual.rows(), config_.hidden_size});
  t.router = router(layer, t.router_in, replay_index, routing);
  t.experts = experts(layer, t.pre_feedforward_layernorm_2, t.router.routed, t.router.top_k_weights);
  t.post_feedforward_layernorm_2 = norm(p + "post_feedforward_layernorm_2", reshaped(t.experts, residual.shape));
  t.sum = ops::add(t.post_feedforward_layernorm_1, t.post_feedforward_layernorm_2, numerics_, "dense + experts");
  return t;
}

Gemma4::PleTrace Gemma4::ple(int64_t layer, const Array& residual, const Array& per_layer_input) const {
  const std::string p = layer_prefix(layer);
  PleTrace t;
  t.gate = linear(p + "per_layer_input_gate", residual);
  t.act_fn = activation(t.gate);
  t.projection_in = ops::multiply(t.act_fn, per_layer_input, numerics_, "act_fn(gate) * per_layer_input");
  t.projection = linear(p + "per_layer_projection", t.projection_in);
  t.norm = norm(p + "post_per_layer_input_norm", t.projection);
  return t;
}

Array Gemma4::scale_by_layer_scalar(int64_t layer, const Array& h) const {
  if (variants_.has(Variant::kGemma4LayerScalarIgnored)) return h;  // the buffer left at 1.0
  // layer_scalar is a persistent buffer, not a parameter: it multiplies the whole stream in place.
  const auto scalar = weight(layer_prefix(layer) + "layer_scalar", {1});
  return ops::scale(h, scalar->data[0], numerics_);
}

Gemma4::LayerTrace Gemma4::decoder_layer(int64_t layer, const Array& h, const Array* per_layer_input,
                                         const ops::RotaryTables& rope, const Array& mask, const KeyValue* shared,
                                         const IndexArray* replay_index, const RoutingPolicy* routing) const {
  const std::string p = layer_prefix(layer);
  LayerTrace t;
  t.input_layernorm = norm(p + "input_layernorm", h);
  t.attn = self_attn(layer, t.input_layernorm, rope, mask, shared);
  t.post_attention_layernorm = norm(p + "post_attention_layernorm", t.attn.out);
  // gemma4_residual_fp32_rounded_late: the residual stream is summed in fp32 and rounded to the
  // activation dtype once, before layer_scalar; each branch reads the rounded stream.
  const bool late = variants_.has(Variant::kGemma4ResidualFp32RoundedLate);
  const Numerics fp32(Precision::F32);
  const Numerics& stream_sum = late ? fp32 : numerics_;
  Array stream = ops::add(h, t.post_attention_layernorm, stream_sum, "attention residual");
  t.residual = stream;
  if (late) numerics_.act(t.residual);
  t.pre_feedforward_layernorm = norm(p + "pre_feedforward_layernorm", t.residual);
  // MoE: normed2 = pre_feedforward_layernorm_2(h1) once, for the experts (and, under
  // gemma4_mlp_on_pre_feedforward_layernorm_2, the dense MLP: pre_feedforward_layernorm's output unused).
  Array normed2;
  if (config_.enable_moe_block)
    normed2 = norm(p + "pre_feedforward_layernorm_2", reshaped(t.residual, {t.residual.rows(), config_.hidden_size}));
  t.mlp_in = config_.enable_moe_block && variants_.has(Variant::kGemma4MlpOnPreFeedforward2)
                 ? reshaped(normed2, t.residual.shape)
                 : t.pre_feedforward_layernorm;
  t.mlp = mlp(layer, t.mlp_in);
  const Array* ffn = &t.mlp.down_proj;
  if (config_.enable_moe_block) {
    t.moe = moe(layer, t.residual, std::move(normed2), t.mlp.down_proj, replay_index, routing);
    ffn = &t.moe->sum;
  }
  t.post_feedforward_layernorm = norm(p + "post_feedforward_layernorm", *ffn);
  stream = ops::add(stream, t.post_feedforward_layernorm, stream_sum, "feed-forward residual");
  if (config_.has_ple()) {
    PARITY_CHECK(per_layer_input != nullptr, "[gemma4] layer {} needs its per-layer input", layer);
    t.ple_residual = stream;
    if (late) numerics_.act(t.ple_residual);
    t.ple = ple(layer, t.ple_residual, *per_layer_input);
    stream = ops::add(stream, t.ple->norm, stream_sum, "per-layer-input residual");
  }
  if (late) numerics_.act(stream);
  t.out = scale_by_layer_scalar(layer, stream);
  return t;
}

Array Gemma4::lm_head(const Array& hidden) const { return linear("lm_head", hidden); }

Array Gemma4::final_logits(const Array& lm_head_out) const {
  Array logits = lm_head_out;
  // gemma4_no_final_softcap: the config's cap ignored.
  if (config_.final_logit_softcapping && !variants_.has(Variant::kGemma4NoFinalSoftcap))
    ops::softcap(logits, *config_.final_logit_softcapping, numerics_);
  return logits;
}

}  // namespace parity
