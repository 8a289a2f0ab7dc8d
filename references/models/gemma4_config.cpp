#include "gemma4_config.h"

#include <algorithm>
#include <charconv>

#include "error.h"
#include "hf_config.h"

namespace parity {

namespace {

using nlohmann::json;

// Gemma4TextConfig's class defaults (configuration_gemma4.py): a config.json may leave any out.
constexpr int64_t kDefaultVocabSize = 262144;
constexpr int64_t kDefaultHiddenSize = 2304;
constexpr int64_t kDefaultIntermediateSize = 9216;
constexpr int64_t kDefaultNumHiddenLayers = 30;
constexpr int64_t kDefaultNumAttentionHeads = 8;
constexpr int64_t kDefaultNumKeyValueHeads = 4;
constexpr int64_t kDefaultHeadDim = 256;
constexpr int64_t kDefaultGlobalHeadDim = 512;  // the `global_head_dim` kwarg's default
constexpr double kDefaultRmsNormEps = 1e-6;
constexpr int64_t kDefaultSlidingWindow = 512;
constexpr int64_t kDefaultPleWidth = 256;
constexpr int64_t kDefaultPleVocab = 262144;
constexpr int64_t kDefaultSlidingWindowPattern = 6;  // layer i is full iff (i + 1) % 6 == 0

int64_t int_or(const json& c, const char* key, int64_t fallback) {
  return config_optional_int(c, key).value_or(fallback);
}

bool bool_or(const json& c, const char* key, bool fallback) { return config_optional_bool(c, key).value_or(fallback); }

// The text config and where its modules live.
std::pair<const json*, std::string> text_part(const json& config) {
  const std::string type = config_string(config, "model_type");
  if (type == "gemma4_text") return {&config, "model."};
  PARITY_CHECK(type == "gemma4", "[config] model_type \"{}\" is not a Gemma-4 config (gemma4_text, gemma4)", type);
  PARITY_CHECK(config.contains("text_config") && config.at("text_config").is_object(),
               "[config] model_type gemma4 needs a \"text_config\" object");
  return {&config.at("text_config"), "model.language_model."};
}

std::vector<std::string> layer_types_of(const json& c, int64_t layers) {
  std::vector<std::string> types;
  if (!c.contains("layer_types") || c.at("layer_types").is_null()) {
    for (int64_t i = 0; i < layers; ++i)
      types.emplace_back((i + 1) % kDefaultSlidingWindowPattern ? kSlidingAttention : kFullAttention);
  } else {
    const json& list = c.at("layer_types");
    PARITY_CHECK(list.is_array() && static_cast<int64_t>(list.size()) == layers,
                 "[config] layer_types must list num_hidden_layers = {} layer types, got {}", layers, list.dump());
    for (const json& t : list) {
      PARITY_CHECK(t.is_string() && (t == kSlidingAttention || t == kFullAttention),
                   "[config] layer type {} is not implemented (sliding_attention, full_attention)", t.dump());
      types.push_back(t.get<std::string>());
    }
  }
  // Gemma4TextConfig.__post_init__ forces the last layer to full attention (with a warning).
  if (!types.empty()) types.back() = kFullAttention;
  return types;
}

// per_layer_config {"05": {"head_dim": 512, "num_key_value_heads": 2}} -> overrides by layer index.
std::map<int64_t, json> per_layer_overrides(const json& c, int64_t layers) {
  std::map<int64_t, json> out;
  const json& table = c.at("per_layer_config");
  PARITY_CHECK(table.is_object(), "[config] per_layer_config must be an object, got {}", table.dump());
  for (const auto& [key, overrides] : table.items()) {
    int64_t layer = -1;
    const auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), layer);
    PARITY_CHECK(ec == std::errc() && end == key.data() + key.size() && layer >= 0 && layer < layers,
                 "[config] per_layer_config key \"{}\" is not a layer index in 0..{}", key, layers - 1);
    PARITY_CHECK(overrides.is_object(), "[config] per_layer_config[\"{}\"] must be an object", key);
    for (const auto& [name, value] : overrides.items())
      PARITY_CHECK(name == "head_dim" || name == "num_key_value_heads",
                   "[config] per_layer_config[\"{}\"] overrides \"{}\": the reference implements per-layer "
                   "head_dim and num_key_value_heads only", key, name);
    out[layer] = overrides;
  }
  return out;
}

// Head dim and KV heads of every layer, from either layout (configuration_gemma4.py __post_init__).
void resolve_attention_geometry(const json& c, Gemma4Config& g) {
  std::map<int64_t, json> overrides;
  if (c.contains("per_layer_config")) {
    // The key's presence switches the old keys off, as in HF; null means no layer overrides
    // anything (every layer takes head_dim and num_key_value_heads).
    if (!c.at("per_layer_config").is_null()) overrides = per_layer_overrides(c, g.num_hidden_layers);
  } else {
    PARITY_CHECK(!c.contains("global_head_dim") || !c.at("global_head_dim").is_null(),
                 "[config] global_head_dim is null (HF refuses it: full layers need a head dim)");
    json full = {{"head_dim", int_or(c, "global_head_dim", kDefaultGlobalHeadDim)}};
    // num_global_key_value_heads is only applied on k_eq_v models (HF gates it the same way).
    if (auto nkv = config_optional_int(c, "num_global_key_value_heads"); nkv && g.attention_k_eq_v)
      full["num_key_value_heads"] = *nkv;
    for (int64_t i = 0; i < g.num_hidden_layers; ++i)
      if (g.layer_types[static_cast<size_t>(i)] == kFullAttention) overrides[i] = full;
  }
  for (int64_t i = 0; i < g.num_hidden_layers; ++i) {
    Gemma4Layer& layer = g.layers[static_cast<size_t>(i)];
    const json none = json::object();
    const json& o = overrides.count(i) ? overrides.at(i) : none;
    layer.head_dim = int_or(o, "head_dim", g.head_dim);
    layer.num_key_value_heads = int_or(o, "num_key_value_heads", g.num_key_value_heads);
    PARITY_CHECK(layer.head_dim > 0 && layer.head_dim % 2 == 0, "[config] layer {} head_dim {} must be even and positive",
                 i, layer.head_dim);
    PARITY_CHECK(layer.num_key_value_heads > 0 && g.num_attention_heads % layer.num_key_value_heads == 0,
                 "[config] layer {}: num_attention_heads {} is not a multiple of num_key_value_heads {}", i,
                 g.num_attention_heads, layer.num_key_value_heads);
  }
}

// KV sharing (Gemma4TextAttention.__init__): F = L - num_kv_shared_layers; layer i >= F reads the
// K/V of the last layer of its type before F, which stores them.
void resolve_kv_sharing(Gemma4Config& g) {
  const int64_t first_shared = g.num_hidden_layers - g.num_kv_shared_layers;
  std::map<std::string, int64_t> last_of_type;  // before F
  for (int64_t i = 0; i < first_shared; ++i) last_of_type[g.layer_types[static_cast<size_t>(i)]] = i;
  for (int64_t i = 0; i < g.num_hidden_layers; ++i) {
    Gemma4Layer& layer = g.layers[static_cast<size_t>(i)];
    auto source = last_of_type.find(layer.layer_type);
    layer.kv_shared = i >= first_shared;
    if (layer.kv_shared) {
      PARITY_CHECK(source != last_of_type.end(),
                   "[config] layer {} shares the K/V of a {} layer, but none comes before the first shared layer {}",
                   i, layer.layer_type, first_shared);
      layer.kv_source = source->second;
    } else {
      layer.stores_kv = source != last_of_type.end() && source->second == i;
    }
    // Gemma4TextMLP: `layer_idx >= first_kv_shared_layer_idx > 0`.
    const bool double_wide = g.use_double_wide_mlp && layer.kv_shared && first_shared > 0;
    layer.intermediate_size = g.intermediate_size * (double_wide ? 2 : 1);
  }
}

Gemma4Rope rope_of(const json& params, const std::string& layer_type, int64_t head_dim) {
  PARITY_CHECK(params.is_object(), "[config] rope_parameters[\"{}\"] must be an object, got {}", layer_type,
               params.dump());
  for (const auto& [key, value] : params.items())
    PARITY_CHECK(key == "rope_type" || key == "rope_theta" || key == "partial_rotary_factor" || key == "factor",
                 "[config] rope_parameters[\"{}\"] key \"{}\" is not implemented", layer_type, key);
  Gemma4Rope r;
  r.rope_type = config_string(params, "rope_type");
  r.rope_theta = config_double(params, "rope_theta");
  r.head_dim = head_dim;
  if (r.rope_type == "proportional") {
    r.partial_rotary_factor = config_optional_double(params, "partial_rotary_factor").value_or(1.0);
    r.factor = config_optional_double(params, "factor").value_or(1.0);
    PARITY_CHECK(r.partial_rotary_factor >= 0 && r.partial_rotary_factor <= 1 && r.factor > 0,
                 "[config] rope_parameters[\"{}\"]: partial_rotary_factor {} must be in [0, 1] and factor {} > 0",
                 layer_type, r.partial_rotary_factor, r.factor);
  } else {
    // Gemma4TextRotaryEmbedding.compute_default_rope_parameters reads rope_theta and the head dim only.
    PARITY_CHECK(r.rope_type == "default", "[config] rope_type \"{}\" for {} is not implemented (default, proportional)",
                 r.rope_type, layer_type);
  }
  PARITY_CHECK(r.rope_theta > 0, "[config] rope_parameters[\"{}\"].rope_theta must be positive", layer_type);
  return r;
}

// One table per layer type, built for that type's head dim (all its layers must agree, as HF's
// per_layer_config[layer_type] requires).
void resolve_rope(const json& c, Gemma4Config& g) {
  json params = c.contains("rope_parameters") ? c.at("rope_parameters") : json();
  if (params.is_null())
    params = {{kSlidingAttention, {{"rope_type", "default"}, {"rope_theta", 10000.0}}},
              {kFullAttention, {{"rope_type", "proportional"}, {"partial_rotary_factor", 0.25}, {"rope_theta", 1e6}}}};
  PARITY_CHECK(params.is_object(), "[config] rope_parameters must be an object, got {}", params.dump());
  std::map<std::string, const Gemma4Layer*> first_of_type;
  for (const Gemma4Layer& layer : g.layers) {
    const std::string& type = layer.layer_type;
    if (auto it = first_of_type.find(type); it != first_of_type.end()) {
      // HF's per_layer_config[layer_type] raises unless every layer of the type has the same overrides.
      PARITY_CHECK(it->second->head_dim == layer.head_dim &&
                       it->second->num_key_value_heads == layer.num_key_value_heads,
                   "[config] {} layers differ in head_dim or num_key_value_heads: HF builds one rotary table per "
                   "layer type and refuses such a per_layer_config", type);
      continue;
    }
    first_of_type[type] = &layer;
    PARITY_CHECK(params.contains(type) && !params.at(type).is_null(), "[config] rope_parameters has no \"{}\" entry",
                 type);
    g.rope[type] = rope_of(params.at(type), type, layer.head_dim);
  }
}

void resolve_moe(const json& c, Gemma4Config& g) {
  g.enable_moe_block = bool_or(c, "enable_moe_block", false);
  if (!g.enable_moe_block) return;
  g.num_experts = config_int(c, "num_experts");
  g.top_k_experts = config_int(c, "top_k_experts");
  g.moe_intermediate_size = config_int(c, "moe_intermediate_size");
  PARITY_CHECK(g.num_experts > 0 && g.top_k_experts > 0 && g.top_k_experts <= g.num_experts &&
                   g.moe_intermediate_size > 0,
               "[config] MoE needs num_experts > 0, top_k_experts in 1..num_experts and moe_intermediate_size > 0, "
               "got {}, {}, {}", g.num_experts, g.top_k_experts, g.moe_intermediate_size);
}

void resolve_ple(const json& c, Gemma4Config& g) {
  // Absent: the class default (256, ON); null or 0: off.
  if (!c.contains("hidden_size_per_layer_input")) g.hidden_size_per_layer_input = kDefaultPleWidth;
  else g.hidden_size_per_layer_input = config_optional_int(c, "hidden_size_per_layer_input").value_or(0);
  PARITY_CHECK(g.hidden_size_per_layer_input >= 0, "[config] hidden_size_per_layer_input must be >= 0");
  if (g.has_ple()) g.vocab_size_per_layer_input = int_or(c, "vocab_size_per_layer_input", kDefaultPleVocab);
}

// Gemma4Config's defaults (configuration_gemma4.py); a null id is no placeholder.
constexpr std::pair<const char*, int64_t> kPlaceholderDefaults[] = {
    {"image_token_id", 258880}, {"video_token_id", 258884}, {"audio_token_id", 258881}};

void resolve_placeholders(const json& config, const json& text, Gemma4Config& g) {
  // Both embeddings' padding_idx, text model or multimodal wrapper alike.
  g.padding_idx = text.contains("pad_token_id") && text["pad_token_id"].is_null()
                      ? std::nullopt
                      : std::optional<int64_t>(int_or(text, "pad_token_id", 0));
  if (&config == &text) return;  // gemma4_text: Gemma4ForCausalLM embeds the ids as they are
  g.pad_token_id = int_or(text, "pad_token_id", 0);
  for (const auto& [key, fallback] : kPlaceholderDefaults)
    if (!config.contains(key)) g.placeholder_token_ids.push_back(fallback);
    else if (const std::optional<int64_t> id = config_optional_int(config, key)) g.placeholder_token_ids.push_back(*id);
}

void refuse_unimplemented(const json& c) {
  PARITY_CHECK(!bool_or(c, "attention_bias", false), "[config] gemma4 attention_bias=true is not implemented");
  const std::optional<std::string> bidirectional = config_optional_string(c, "use_bidirectional_attention");
  PARITY_CHECK(bidirectional.value_or("vision") == "vision",
               "[config] use_bidirectional_attention \"{}\" is not implemented (causal text only)", *bidirectional);
}

}  // namespace

Gemma4Config Gemma4Config::from_hf(const json& config) {
  const auto [text, prefix] = text_part(config);
  const json& c = *text;
  refuse_unimplemented(c);
  Gemma4Config g;
  g.module_prefix = prefix;
  g.vocab_size = int_or(c, "vocab_size", kDefaultVocabSize);
  g.hidden_size = int_or(c, "hidden_size", kDefaultHiddenSize);
  g.intermediate_size = int_or(c, "intermediate_size", kDefaultIntermediateSize);
  g.num_hidden_layers = int_or(c, "num_hidden_layers", kDefaultNumHiddenLayers);
  g.num_attention_heads = int_or(c, "num_attention_heads", kDefaultNumAttentionHeads);
  g.num_key_value_heads = int_or(c, "num_key_value_heads", kDefaultNumKeyValueHeads);
  g.head_dim = int_or(c, "head_dim", kDefaultHeadDim);
  PARITY_CHECK(g.vocab_size > 0 && g.hidden_size > 0 && g.intermediate_size > 0 && g.num_hidden_layers > 0 &&
                   g.num_attention_heads > 0,
               "[config] vocab_size, hidden_size, intermediate_size, num_hidden_layers and num_attention_heads must "
               "be positive");
  g.rms_norm_eps = config_optional_double(c, "rms_norm_eps").value_or(kDefaultRmsNormEps);
  g.hidden_activation = ops::activation_from_hf(config_optional_string(c, "hidden_activation").value_or("gelu_pytorch_tanh"));
  g.layer_types = layer_types_of(c, g.num_hidden_layers);
  const bool any_sliding = std::count(g.layer_types.begin(), g.layer_types.end(), kSlidingAttention) > 0;
  g.sliding_window = c.contains("sliding_window") ? config_optional_int(c, "sliding_window")
                                                  : std::optional<int64_t>(kDefaultSlidingWindow);
  PARITY_CHECK(!any_sliding || (g.sliding_window && *g.sliding_window > 0),
               "[config] sliding_attention layers need a positive sliding_window");
  g.attention_k_eq_v = bool_or(c, "attention_k_eq_v", false);
  g.num_kv_shared_layers = int_or(c, "num_kv_shared_layers", 0);
  PARITY_CHECK(g.num_kv_shared_layers >= 0 && g.num_kv_shared_layers < g.num_hidden_layers,
               "[config] num_kv_shared_layers {} must be in 0..num_hidden_layers - 1 = {}", g.num_kv_shared_layers,
               g.num_hidden_layers - 1);
  g.use_double_wide_mlp = bool_or(c, "use_double_wide_mlp", false);
  g.final_logit_softcapping = config_optional_double(c, "final_logit_softcapping");
  PARITY_CHECK(!g.final_logit_softcapping || *g.final_logit_softcapping > 0,
               "[config] final_logit_softcapping must be positive or null");
  g.tie_word_embeddings = bool_or(c, "tie_word_embeddings", true);
  resolve_moe(c, g);
  resolve_ple(c, g);
  resolve_placeholders(config, c, g);

  g.layers.resize(static_cast<size_t>(g.num_hidden_layers));
  for (int64_t i = 0; i < g.num_hidden_layers; ++i) {
    Gemma4Layer& layer = g.layers[static_cast<size_t>(i)];
    layer.layer_type = g.layer_types[static_cast<size_t>(i)];
    layer.k_eq_v = g.attention_k_eq_v && !layer.sliding();  // use_alternative_attention
  }
  resolve_attention_geometry(c, g);
  resolve_kv_sharing(g);
  resolve_rope(c, g);
  return g;
}

nlohmann::ordered_json Gemma4Config::resolved() const {
  nlohmann::ordered_json j = {
      {"vocab_size", vocab_size}, {"hidden_size", hidden_size}, {"num_hidden_layers", num_hidden_layers},
      {"num_attention_heads", num_attention_heads}, {"rms_norm_eps", rms_norm_eps},
      {"hidden_activation", hidden_activation == ops::Activation::kGeluTanh ? "gelu_pytorch_tanh" : "silu"},
      {"sliding_window", sliding_window ? nlohmann::ordered_json(*sliding_window) : nlohmann::ordered_json()},
      {"enable_moe_block", enable_moe_block}, {"num_experts", num_experts}, {"top_k_experts", top_k_experts},
      {"moe_intermediate_size", moe_intermediate_size}, {"hidden_size_per_layer_input", hidden_size_per_layer_input},
      {"vocab_size_per_layer_input", vocab_size_per_layer_input},
      {"final_logit_softcapping",
       final_logit_softcapping ? nlohmann::ordered_json(*final_logit_softcapping) : nlohmann::ordered_json()},
      {"tie_word_embeddings", tie_word_embeddings}};
  for (const auto& [type, r] : rope)
    j["rope." + type] = {{"rope_type", r.rope_type}, {"rope_theta", r.rope_theta},
                         {"partial_rotary_factor", r.partial_rotary_factor}, {"factor", r.factor},
                         {"head_dim", r.head_dim}};
  for (size_t i = 0; i < layers.size(); ++i) {
    const Gemma4Layer& l = layers[i];
    j[fmt::format("layers.{}", i)] = {{"layer_type", l.layer_type}, {"head_dim", l.head_dim},
                                      {"num_key_value_heads", l.num_key_value_heads}, {"k_eq_v", l.k_eq_v},
                                      {"kv_source", l.kv_source}, {"intermediate_size", l.intermediate_size}};
  }
  return j;
}

IndexArray Gemma4Config::text_input_ids(const IndexArray& input_ids) const {
  IndexArray out = input_ids;
  for (int64_t& id : out.data)
    if (std::find(placeholder_token_ids.begin(), placeholder_token_ids.end(), id) != placeholder_token_ids.end())
      id = pad_token_id;
  return out;
}

}  // namespace parity
