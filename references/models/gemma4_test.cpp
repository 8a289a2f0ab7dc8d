// Doctests of the Gemma-4 reference's config resolution and of the pieces the issue names: the
// proportional RoPE table, the sliding mask at the window edge, k_eq_v, the router on known
// logits, a config parsed in both layouts. End-to-end checks against HF are in gemma4_test.py.
#include "gemma4.h"

#include <cmath>
#include <limits>
#include <map>
#include <numbers>
#include <random>
#include <set>

#include <doctest/doctest.h>

#include "ops/test_util.h"

namespace parity {

namespace {

using nlohmann::json;

// golden/configs/gemma4_full.json's text config, in the layout transformers <= 5.14 saved.
json full_config() {
  return json::parse(R"({
    "model_type": "gemma4_text", "vocab_size": 128, "hidden_size": 48, "intermediate_size": 96,
    "num_hidden_layers": 6, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
    "global_head_dim": 32, "num_global_key_value_heads": 1, "attention_k_eq_v": true,
    "layer_types": ["sliding_attention", "sliding_attention", "full_attention",
                    "sliding_attention", "sliding_attention", "full_attention"],
    "sliding_window": 4, "enable_moe_block": true, "num_experts": 8, "top_k_experts": 2,
    "moe_intermediate_size": 32, "hidden_size_per_layer_input": 8, "vocab_size_per_layer_input": 128,
    "num_kv_shared_layers": 3, "use_double_wide_mlp": true, "final_logit_softcapping": 1.5,
    "rms_norm_eps": 1e-06, "tie_word_embeddings": true})");
}

// Weights by name, recording every name asked for.
class MapWeights final : public WeightSource {
 public:
  std::map<std::string, Weight> weights;
  mutable std::set<std::string> asked;
  bool has(const std::string& name) const override { return weights.count(name) > 0; }
  Weight get(const std::string& name) const override {
    asked.insert(name);
    PARITY_CHECK(weights.count(name), "[test] no weight {}", name);
    return weights.at(name);
  }
};

Weight filled(Shape shape, float value) {
  Weight w{std::move(shape), {}};
  w.data.assign(static_cast<size_t>(numel(w.shape)), value);
  return w;
}

// x̂ = x · (mean(x²) + eps)^-½ over each row: the weight-less RMSNorm, exact.
Array normalized(const Array& x, double eps) {
  Array y = x;
  for (int64_t r = 0; r < y.rows(); ++r) {
    double sum = 0;
    for (int64_t i = 0; i < y.last_dim(); ++i) sum += y.row(r)[i] * y.row(r)[i];
    const double inv = 1.0 / std::sqrt(sum / static_cast<double>(y.last_dim()) + eps);
    for (int64_t i = 0; i < y.last_dim(); ++i) y.row(r)[i] *= inv;
  }
  return y;
}

}  // namespace

TEST_CASE("gemma4 config: global_head_dim keys and per_layer_config resolve to the same layers") {
  const Gemma4Config old_layout = Gemma4Config::from_hf(full_config());
  json new_json = full_config();
  new_json.erase("global_head_dim");
  new_json.erase("num_global_key_value_heads");
  new_json["per_layer_config"] = json::parse(R"({"2": {"head_dim": 32, "num_key_value_heads": 1},
                                                   "5": {"head_dim": 32, "num_key_value_heads": 1}})");
  const Gemma4Config new_layout = Gemma4Config::from_hf(new_json);
  CHECK(old_layout.resolved() == new_layout.resolved());

  const std::vector<int64_t> head_dims = {16, 16, 32, 16, 16, 32}, kv_heads = {2, 2, 1, 2, 2, 1};
  for (size_t i = 0; i < 6; ++i) {
    CAPTURE(i);
    CHECK(new_layout.layers[i].head_dim == head_dims[i]);
    CHECK(new_layout.layers[i].num_key_value_heads == kv_heads[i]);
    CHECK(new_layout.layers[i].k_eq_v == (i == 2 || i == 5));  // full layers of a k_eq_v model
  }
  CHECK(new_layout.rope.at(kFullAttention).head_dim == 32);
  CHECK(new_layout.rope.at(kSlidingAttention).head_dim == 16);
  CHECK(new_layout.module_prefix == "model.");

  // HF ignores global_head_dim when per_layer_config is present; so does the reference.
  new_json["global_head_dim"] = 64;
  CHECK(Gemma4Config::from_hf(new_json).layers[2].head_dim == 32);
  // num_global_key_value_heads only applies with attention_k_eq_v (configuration_gemma4.py).
  json no_k_eq_v = full_config();
  no_k_eq_v["attention_k_eq_v"] = false;
  CHECK(Gemma4Config::from_hf(no_k_eq_v).layers[2].num_key_value_heads == 2);
  CHECK_FALSE(Gemma4Config::from_hf(no_k_eq_v).layers[2].k_eq_v);
  // per_layer_config null: present, so the old keys are off, and nothing is overridden (HF alike).
  new_json["per_layer_config"] = nullptr;
  const Gemma4Config none = Gemma4Config::from_hf(new_json);
  CHECK(none.layers[2].head_dim == 16);
  CHECK(none.layers[5].num_key_value_heads == 2);
}

TEST_CASE("gemma4 config: absent keys take the class defaults, the last layer is forced to full attention") {
  const Gemma4Config g = Gemma4Config::from_hf(json{{"model_type", "gemma4_text"}, {"num_hidden_layers", 7}});
  CHECK(g.hidden_size == 2304);
  CHECK(g.head_dim == 256);
  CHECK(g.sliding_window == 512);
  CHECK(g.hidden_size_per_layer_input == 256);  // PLE is on by default
  CHECK_FALSE(g.final_logit_softcapping.has_value());
  CHECK(g.layers[2].head_dim == 256);
  CHECK(g.layers[5].head_dim == 512);  // global_head_dim's default
  const std::vector<std::string> types = {"sliding_attention", "sliding_attention", "sliding_attention",
                                          "sliding_attention", "sliding_attention", "full_attention",
                                          "full_attention"};  // (i + 1) % 6 == 0, then the last forced
  CHECK(g.layer_types == types);
  CHECK(g.rope.at(kFullAttention).rope_type == "proportional");
  CHECK(g.rope.at(kFullAttention).partial_rotary_factor == 0.25);
  CHECK(g.rope.at(kSlidingAttention).rope_theta == 10000.0);
  // hidden_size_per_layer_input null or 0 turns PLE off.
  CHECK_FALSE(Gemma4Config::from_hf(json{{"model_type", "gemma4_text"}, {"hidden_size_per_layer_input", nullptr}}).has_ple());
}

TEST_CASE("gemma4 config: the multimodal wrapper's text_config lives under model.language_model.") {
  const json wrapped = {{"model_type", "gemma4"}, {"text_config", full_config()}, {"vision_config", json::object()}};
  const Gemma4Config g = Gemma4Config::from_hf(wrapped);
  CHECK(g.module_prefix == "model.language_model.");
  CHECK(g.resolved() == Gemma4Config::from_hf(full_config()).resolved());
}

TEST_CASE("gemma4 config: KV sharing sources, stores and double-wide MLPs") {
  const Gemma4Config g = Gemma4Config::from_hf(full_config());  // F = 3: layers 3, 4, 5 share
  const std::vector<int64_t> sources = {-1, -1, -1, 1, 1, 2};
  const std::vector<bool> stores = {false, true, true, false, false, false};
  const std::vector<int64_t> widths = {96, 96, 96, 192, 192, 192};
  for (size_t i = 0; i < 6; ++i) {
    CAPTURE(i);
    CHECK(g.layers[i].kv_shared == (i >= 3));
    CHECK(g.layers[i].kv_source == sources[i]);
    CHECK(g.layers[i].stores_kv == stores[i]);
    CHECK(g.layers[i].intermediate_size == widths[i]);
  }
  // Without sharing the last layer of each type still stores (HF's store_full_length_kv); no widening.
  json plain = full_config();
  plain["num_kv_shared_layers"] = 0;
  const Gemma4Config p = Gemma4Config::from_hf(plain);
  CHECK(p.layers[4].stores_kv);
  CHECK(p.layers[5].stores_kv);
  CHECK_FALSE(p.layers[1].stores_kv);
  CHECK(p.layers[5].intermediate_size == 96);
}

TEST_CASE("gemma4 config: refuses what the reference would get wrong, naming the key") {
  auto refused = [](json c, const std::string& expected) {
    CAPTURE(expected);
    try {
      Gemma4Config::from_hf(c);
      FAIL("accepted");
    } catch (const Error& e) {
      const std::string what = e.what();
      CAPTURE(what);
      CHECK(what.find(expected) != std::string::npos);
    }
  };
  json c = full_config();
  c["per_layer_config"] = {{"2", {{"intermediate_size", 64}}}};
  refused(c, "intermediate_size");
  c["per_layer_config"] = {{"9", {{"head_dim", 64}}}};
  refused(c, "\"9\"");
  c["per_layer_config"] = {{"2", {{"head_dim", 64}}}};  // layer 5, also full, keeps 16
  refused(c, "full_attention layers differ");
  c = full_config();
  c["rope_parameters"] = {{"sliding_attention", {{"rope_type", "yarn"}, {"rope_theta", 1e4}}},
                          {"full_attention", {{"rope_type", "default"}, {"rope_theta", 1e6}}}};
  refused(c, "yarn");
  c = full_config();
  c["global_head_dim"] = nullptr;
  refused(c, "global_head_dim");
  c = full_config();
  c["num_kv_shared_layers"] = 4;  // F = 2: layer 2 (full) has no full layer before it
  refused(c, "layer 2 shares");
  c = full_config();
  c["attention_bias"] = true;
  refused(c, "attention_bias");
  c = full_config();
  c["use_bidirectional_attention"] = "all";
  refused(c, "use_bidirectional_attention");
  c = full_config();
  c["layer_types"] = {"sliding_attention"};
  refused(c, "layer_types");
  refused(json{{"model_type", "gemma3_text"}}, "gemma3_text");
}

TEST_CASE("gemma4: the full-attention table is proportional over the whole 512-dim head") {
  json c = full_config();
  c["global_head_dim"] = 512;  // the released models' global head dim, prf 0.25, theta 1e6
  MapWeights none;
  const Gemma4 model(Gemma4Config::from_hf(c), none, Numerics(Precision::F64));
  const IndexArray positions{{1, 2}, {0, 7}};
  const ops::RotaryTables t = model.rotary_emb(positions, kFullAttention);
  REQUIRE(t.cos.shape == Shape{1, 2, 512});
  const double* cos7 = t.cos.row(1);
  const double* sin7 = t.sin.row(1);
  CHECK(cos7[0] == doctest::Approx(std::cos(7.0)));                    // inv_freq[0] = 1
  CHECK(cos7[63] == doctest::Approx(std::cos(7.0 * 0.033376)).epsilon(1e-5));  // 1e6^(-126/512)
  CHECK(cos7[256 + 63] == cos7[63]);                                  // dim 63 pairs with 319
  for (int j : {64, 100, 255, 256 + 64, 511}) {
    CAPTURE(j);
    CHECK(cos7[j] == 1.0);  // the 192 zero frequencies: these dims pass through
    CHECK(sin7[j] == 0.0);
  }
}

TEST_CASE("gemma4: a sliding layer's query i sees keys i - W < j <= i, a full layer's all j <= i") {
  MapWeights none;
  const Gemma4 model(Gemma4Config::from_hf(full_config()), none, Numerics(Precision::F32));  // W = 4
  const IndexArray padding{{1, 7}, std::vector<int64_t>(7, 1)};
  const Array sliding = model.attention_mask(padding, kSlidingAttention);
  const Array full = model.attention_mask(padding, kFullAttention);
  const double hidden = std::numeric_limits<float>::lowest();
  auto at = [](const Array& m, int i, int j) { return m.data[static_cast<size_t>(i * 7 + j)]; };
  // Query 4: keys 1..4 visible (exactly W of them), key 0 just outside the window.
  CHECK(at(sliding, 4, 0) == hidden);
  for (int j = 1; j <= 4; ++j) CHECK(at(sliding, 4, j) == 0.0);
  CHECK(at(sliding, 4, 5) == hidden);
  CHECK(at(sliding, 3, 0) == 0.0);  // query 3 still reaches key 0
  CHECK(at(sliding, 6, 2) == hidden);  // query 6: keys 3..6
  CHECK(at(sliding, 6, 3) == 0.0);
  for (int j = 0; j <= 6; ++j) CHECK(at(full, 6, j) == 0.0);
  CHECK(at(full, 5, 6) == hidden);
}

TEST_CASE("gemma4: a k_eq_v layer's values are v_norm of the raw k_proj output, and it has no v_proj") {
  json c = full_config();
  c["num_kv_shared_layers"] = 0;
  const Gemma4Config config = Gemma4Config::from_hf(c);
  MapWeights w;
  std::mt19937 rng(7);
  const std::string p = "model.layers.2.self_attn.";  // full, k_eq_v: 1 KV head of dim 32
  w.weights[p + "q_proj.weight"] = ops::test::random_weight({4 * 32, 48}, rng);
  w.weights[p + "k_proj.weight"] = ops::test::random_weight({32, 48}, rng);
  w.weights[p + "o_proj.weight"] = ops::test::random_weight({48, 4 * 32}, rng);
  w.weights[p + "q_norm.weight"] = ops::test::random_weight({32}, rng, 0.5f, 1.5f);
  w.weights[p + "k_norm.weight"] = ops::test::random_weight({32}, rng, 0.5f, 1.5f);
  const Gemma4 model(config, w, Numerics(Precision::F64));
  const Array x = ops::test::random_array({1, 5, 48}, rng);
  const IndexArray positions{{1, 5}, {0, 1, 2, 3, 4}};
  const IndexArray padding{{1, 5}, {1, 1, 1, 1, 1}};
  const Gemma4::AttentionTrace t = model.self_attn(2, x, model.rotary_emb(positions, kFullAttention),
                                                   model.attention_mask(padding, kFullAttention), nullptr);
  CHECK(t.v_proj.data.empty());
  CHECK(w.asked.count(p + "v_proj.weight") == 0);
  const Array expected = normalized(reshaped(t.k_proj, {1, 5, 1, 32}), config.rms_norm_eps);
  REQUIRE(t.kv.value.shape == expected.shape);
  for (int64_t i = 0; i < expected.numel(); ++i) CHECK(t.kv.value.data[i] == doctest::Approx(expected.data[i]).epsilon(1e-13));
  // Not the normed-and-rotated keys: k_norm's weights and RoPE do not reach the values.
  double differs = 0;
  for (int64_t i = 0; i < expected.numel(); ++i) differs = std::max(differs, std::abs(t.kv.key.data[i] - t.kv.value.data[i]));
  CHECK(differs > 0.1);
}

TEST_CASE("gemma4: the router on known logits: full softmax, top-k, renormalise, then per_expert_scale") {
  json c = full_config();
  c["hidden_size"] = 4;
  c["num_experts"] = 4;
  c["top_k_experts"] = 2;
  c["rms_norm_eps"] = 0.0;
  MapWeights w;
  const std::string p = "model.layers.0.router.";
  w.weights[p + "scale"] = filled({4}, 1.0f);
  w.weights[p + "per_expert_scale"] = Weight{{4}, {0.5f, 2.0f, 1.0f, 3.0f}};
  // x = (2, 0, 0, 0) has rms 1, so the weight-less norm keeps it; times scale (1) and H^-½ = ½ it
  // is (1, 0, 0, 0), and proj's first column is the logits: (0, 1, ln 3, -1).
  const float ln3 = std::log(3.0f);
  w.weights[p + "proj.weight"] = Weight{{4, 4}, {0.0f, 0, 0, 0, 1.0f, 0, 0, 0, ln3, 0, 0, 0, -1.0f, 0, 0, 0}};
  const Gemma4 model(Gemma4Config::from_hf(c), w, Numerics(Precision::F64));
  const Array x({1, 4}, {2.0, 0.0, 0.0, 0.0});
  const Gemma4::RouterTrace t = model.router(0, x, nullptr, nullptr);
  const std::vector<double> logits = {0.0, 1.0, ln3, -1.0};
  const double three = std::exp(static_cast<double>(ln3));  // e^ln3, ln3 rounded to float
  double z = 0;
  for (double l : logits) z += std::exp(l);
  for (int e = 0; e < 4; ++e) {
    CAPTURE(e);
    CHECK(t.logits.data[e] == doctest::Approx(logits[e]).epsilon(1e-12));
    CHECK(t.probs.data[e] == doctest::Approx(std::exp(logits[e]) / z).epsilon(1e-12));  // over ALL experts
  }
  REQUIRE(t.top_k_index.data == std::vector<int64_t>{2, 1});  // e^ln3 = 3 > e^1 > e^0 > e^-1
  // Renormalised over the two chosen (3 / (3 + e), e / (3 + e)), then times per_expert_scale (1, 2).
  const double e1 = std::exp(1.0);
  CHECK(t.top_k_weights.data[0] == doctest::Approx(1.0 * three / (three + e1)).epsilon(1e-12));
  CHECK(t.top_k_weights.data[1] == doctest::Approx(2.0 * e1 / (three + e1)).epsilon(1e-12));
  // The router normalises its own input: scaling the residual changes nothing.
  const Gemma4::RouterTrace scaled = model.router(0, Array({1, 4}, {7.0, 0.0, 0.0, 0.0}), nullptr, nullptr);
  CHECK(scaled.top_k_weights.data == t.top_k_weights.data);
  // Routing replay: weights follow the given experts (renormalised over them), not the own choice.
  const IndexArray replay{{1, 2}, {3, 0}};
  const Gemma4::RouterTrace replayed = model.router(0, x, &replay, nullptr);
  CHECK(replayed.top_k_index.data == t.top_k_index.data);
  const double em1 = std::exp(-1.0);
  CHECK(replayed.top_k_weights.data[0] == doctest::Approx(3.0 * em1 / (em1 + 1.0)).epsilon(1e-12));
  CHECK(replayed.top_k_weights.data[1] == doctest::Approx(0.5 * 1.0 / (em1 + 1.0)).epsilon(1e-12));
}

TEST_CASE("gemma4: weights are found under either text prefix") {
  json wrapped = {{"model_type", "gemma4"}, {"text_config", full_config()}};
  MapWeights w;
  w.weights["model.embed_tokens.weight"] = filled({128, 48}, 0.25f);  // a Gemma4ForCausalLM checkpoint
  const Gemma4 model(Gemma4Config::from_hf(wrapped), w, Numerics(Precision::F64));
  const Array e = model.embed_tokens(IndexArray{{1, 1}, {5}});
  CHECK(w.asked.count("model.embed_tokens.weight") == 1);
  CHECK(e.data[0] == doctest::Approx(0.25 * std::sqrt(48.0)));  // scaled by √H
  MapWeights none;
  const Gemma4 missing(Gemma4Config::from_hf(full_config()), none, Numerics(Precision::F64));
  CHECK_THROWS_WITH_AS(missing.embed_tokens(IndexArray{{1, 1}, {5}}), doctest::Contains("model.embed_tokens.weight"),
                       Error);
}

}  // namespace parity
