#include "io/inspect.h"

#include <fmt/format.h>

namespace parity::harness {

namespace {

// Keys that change the math of Gemma-4 or OLMoE (docs/hf-forward-passes.md 2.1, 3.1), in reading order.
constexpr const char* kConfigKeys[] = {
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "global_head_dim", "num_global_key_value_heads", "per_layer_config",
    "attention_k_eq_v", "layer_types", "sliding_window", "rope_parameters", "rms_norm_eps",
    "hidden_activation", "hidden_act", "enable_moe_block", "num_experts", "top_k_experts",
    "num_experts_per_tok", "moe_intermediate_size", "norm_topk_prob", "clip_qkv",
    "hidden_size_per_layer_input", "vocab_size_per_layer_input", "num_kv_shared_layers",
    "use_double_wide_mlp", "final_logit_softcapping", "tie_word_embeddings",
};

std::string section(const Fixture& fixture, std::string_view group) {
  const auto& names = fixture.names(group);
  std::string out = fmt::format("{} ({})\n", group, names.size());
  for (const std::string& name : names) {
    DatasetInfo info = fixture.info(group, name);
    out += fmt::format("  {:<9} {:<16} {}", dtype_name(info.dtype), shape_str(info.shape), name);
    if (!info.link_target.empty()) out += fmt::format("  -> {}", info.link_target);
    if (!info.derived.empty()) out += "  (derived by the dumper)";
    out += '\n';
  }
  return out;
}

}  // namespace

std::vector<std::string> config_summary(const nlohmann::json& config) {
  std::vector<std::string> lines;
  // A multimodal wrapper (Gemma4ForConditionalGeneration) keeps the text model's keys in text_config.
  const bool wrapped = config.contains("text_config") && config.at("text_config").is_object();
  const nlohmann::json& text = wrapped ? config.at("text_config") : config;
  for (const char* key : kConfigKeys) {
    auto it = text.find(key);
    if (it != text.end()) lines.push_back(fmt::format("{}{} {}", wrapped ? "text_config." : "", key, it->dump()));
  }
  return lines;
}

std::string inspect_text(const Fixture& fixture) {
  std::string out = fmt::format("fixture {}\n", fixture.path().string());
  for (const auto& [key, value] : fixture.meta()) out += fmt::format("  {:<22} {}\n", key, attr_str(value));
  out += fmt::format("config ({})\n", fixture.config().value("model_type", "?"));
  for (const std::string& line : config_summary(fixture.config())) out += fmt::format("  {}\n", line);
  for (std::string_view group : Fixture::kGroups)
    if (group != "meta") out += section(fixture, group);
  if (fixture.has_gradients())
    for (std::string_view group : Fixture::kGradGroups) out += section(fixture, group);
  return out;
}

}  // namespace parity::harness
