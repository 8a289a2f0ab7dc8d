#include "io/inspect.h"

#include <doctest/doctest.h>

namespace parity::harness {

TEST_CASE("inspect: config summary keeps numerics keys in reading order and skips the rest") {
  auto config = nlohmann::json::parse(R"({"use_cache": true, "num_experts": 8, "hidden_size": 64, "clip_qkv": null})");
  std::vector<std::string> lines = config_summary(config);
  REQUIRE(lines.size() == 3);
  CHECK(lines[0] == "hidden_size 64");
  CHECK(lines[1] == "num_experts 8");
  CHECK(lines[2] == "clip_qkv null");
}

TEST_CASE("inspect: a multimodal config is summarised from its text_config") {
  auto config = nlohmann::json::parse(R"({"model_type": "gemma4", "text_config": {"hidden_size": 48, "head_dim": 16}})");
  std::vector<std::string> lines = config_summary(config);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == "text_config.hidden_size 48");
  CHECK(lines[1] == "text_config.head_dim 16");
}

TEST_CASE("inspect: lists every weight and hook of a golden Gemma-4 fixture with dtype and shape") {
  Fixture fixture(std::filesystem::path(PARITY_SOURCE_DIR) / "golden" / "gemma4_full.h5");
  std::string text = inspect_text(fixture);
  CHECK(text.find("model_type             gemma4_text") != std::string::npos);
  CHECK(text.find("final_logit_softcapping 1.5") != std::string::npos);
  CHECK(text.find(fmt::format("weights ({})", fixture.names("weights").size())) != std::string::npos);
  CHECK(text.find(fmt::format("hooks ({})", fixture.names("hooks").size())) != std::string::npos);
  CHECK(text.find("float32   [8, 64, 48]      model.layers.0.experts.gate_up_proj") != std::string::npos);
  CHECK(text.find("int64     [24, 2]          model.layers.0.router@top_k_index") != std::string::npos);
  CHECK(text.find("lm_head.weight  -> /weights/model.embed_tokens.weight") != std::string::npos);
}

}  // namespace parity::harness
