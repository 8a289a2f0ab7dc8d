// Gemma4Config: the HF Gemma4TextConfig (transformers v5.15.0 configuration_gemma4.py), resolved
// into what every layer computes. Reads a config.json or a fixture's /meta/config:
//   model_type "gemma4_text" (Gemma4ForCausalLM, modules under "model.") or "gemma4" (the
//   multimodal Gemma4ForConditionalGeneration: its text_config, modules under "model.language_model.");
//   full-attention geometry in either layout: `per_layer_config` (saved by transformers >= 5.15,
//   {"05": {"head_dim": 512, "num_key_value_heads": 2}}) or the older `global_head_dim` /
//   `num_global_key_value_heads` keys (the latter only applied with attention_k_eq_v);
//   absent keys take the class defaults, as transformers does (PLE is ON by default).
// Per layer i with type t (derived exactly as Gemma4TextAttention / Gemma4TextMLP do):
//   head_dim, num_key_value_heads   per_layer_config[i] overrides, else the globals;
//   k_eq_v                          attention_k_eq_v and t is full: no v_proj, V = the raw k_proj output;
//   kv_shared                       i >= F = L - num_kv_shared_layers: no k/v projections, reads
//                                   the K/V its source (the last layer of type t before F) stored;
//   intermediate_size               2x on kv_shared layers with use_double_wide_mlp.
// Anything the reference would get wrong silently (bias, other rope types, bidirectional
// attention, per-layer overrides of other keys) is refused with an error naming the key.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "array.h"
#include "ops/activation.h"

namespace parity {

inline constexpr const char* kSlidingAttention = "sliding_attention";
inline constexpr const char* kFullAttention = "full_attention";

// rope_parameters[layer_type]: "default" (theta^(-2i/D) over every dim) or "proportional"
// (the first int(prf·D/2) frequencies theta^(-2i/D) / factor, D the FULL head dim, then zeros).
struct Gemma4Rope {
  std::string rope_type;              // "default" | "proportional"
  double rope_theta = 0;
  double partial_rotary_factor = 1;   // proportional only (HF's default rope ignores it)
  double factor = 1;                  // proportional only
  int64_t head_dim = 0;               // the head dim of this type's layers: the table has head_dim/2 entries
};

struct Gemma4Layer {
  std::string layer_type;  // kSlidingAttention | kFullAttention
  int64_t head_dim = 0;
  int64_t num_key_value_heads = 0;
  bool k_eq_v = false;
  bool kv_shared = false;
  int64_t kv_source = -1;  // kv_shared: the layer whose K/V it reads
  bool stores_kv = false;  // the last layer of its type before F: stores its K/V for sharing
  int64_t intermediate_size = 0;

  bool sliding() const { return layer_type == kSlidingAttention; }
};

struct Gemma4Config {
  std::string module_prefix;  // "model." or "model.language_model."
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;         // H
  int64_t intermediate_size = 0;   // dense MLP width (before double-wide)
  int64_t num_hidden_layers = 0;   // L
  int64_t num_attention_heads = 0; // Nh, every layer
  int64_t num_key_value_heads = 0; // global (sliding) KV heads
  int64_t head_dim = 0;            // global (sliding) head dim
  double rms_norm_eps = 0;
  ops::Activation hidden_activation = ops::Activation::kGeluTanh;
  std::optional<int64_t> sliding_window;
  std::vector<std::string> layer_types;
  std::map<std::string, Gemma4Rope> rope;  // by layer type (only types that occur)
  bool attention_k_eq_v = false;
  int64_t num_kv_shared_layers = 0;
  bool use_double_wide_mlp = false;
  bool enable_moe_block = false;
  int64_t num_experts = 0;            // E (MoE only)
  int64_t top_k_experts = 0;          // K (MoE only)
  int64_t moe_intermediate_size = 0;  // Im (MoE only)
  int64_t hidden_size_per_layer_input = 0;  // P; 0 = no per-layer embeddings
  int64_t vocab_size_per_layer_input = 0;
  std::optional<double> final_logit_softcapping;
  bool tie_word_embeddings = true;
  // The multimodal wrapper (model_type gemma4) replaces its image, video and audio placeholder ids
  // (top-level image_token_id, video_token_id, audio_token_id) with text_config.pad_token_id before
  // the embedding and the per-layer-input lookup (Gemma4Model.forward). Empty for gemma4_text.
  std::vector<int64_t> placeholder_token_ids;
  int64_t pad_token_id = 0;
  // Both embeddings' padding_idx (HF: config.pad_token_id, default 0; null: none): no gradient reaches that row.
  std::optional<int64_t> padding_idx = 0;
  std::vector<Gemma4Layer> layers;

  bool has_ple() const { return hidden_size_per_layer_input > 0; }
  // input_ids as the text model sees them: placeholders replaced by pad_token_id.
  IndexArray text_input_ids(const IndexArray& input_ids) const;
  // The HF config (either layout, either model_type) resolved; parity::Error naming the key otherwise.
  static Gemma4Config from_hf(const nlohmann::json& config);
  // Everything above as JSON, layers and rope tables resolved: two configs (e.g. a fixture's and a
  // checkpoint's config.json in the other layout) compute the same model iff these are equal.
  nlohmann::ordered_json resolved() const;
};

}  // namespace parity
