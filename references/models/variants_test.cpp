// Doctests of the variant registry (models/known_bugs.toml, compiled in and parsed by variants.cpp)
// and of the math the variants add: the contiguous partial RoPE, the top-k-only router softmax, the
// bf16 router fold, the (1 + w) norm. That each variant turns its zoo fixture (golden/zoo/) from a
// failure into a pass is variants_zoo_test.cpp's job.
#include "variants.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include <doctest/doctest.h>

#include "ops/norm.h"
#include "ops/rope.h"
#include "ops/router.h"
#include "ops/test_util.h"
#include "dtype.h"

namespace parity {

TEST_CASE("variants: one registry entry per enum value, in enum order, with unique names and every field") {
  const auto& all = known_variants();
  REQUIRE(all.size() == static_cast<size_t>(Variant::kCount));
  std::set<std::string_view> names, files;
  for (size_t i = 0; i < all.size(); ++i) {
    const VariantInfo& v = all[i];
    CAPTURE(v.name);
    CHECK(static_cast<size_t>(v.variant) == i);
    CHECK(&variant_info(v.variant) == &v);
    CHECK(names.insert(v.name).second);
    CHECK((v.family == "olmoe" || v.family == "gemma4" || v.family == "any"));
    CHECK(!v.title.empty());
    CHECK(!v.lives_in.empty());
    CHECK(!v.source.empty());
    CHECK(v.story.size() > 200);  // a paragraph: the bug, how it showed up, the fix
    CHECK(v.story.find("Fix:") != std::string::npos);
    CHECK(v.story.find('\n') == std::string::npos);  // the TOML's line-ending backslashes join it into one line
    if (v.family != "any") CHECK(v.name.starts_with(v.family));
    CHECK(!v.first_failure_isolated.empty());
    CHECK(!v.first_failure_chained.empty());
    CHECK(!v.lives_at.empty());
    CHECK(files.insert(v.fixture.file).second);
    CHECK(v.fixture.file == v.name + ".h5");  // cases/zoo/<name>.toml and the zoo's own tests expect this
    CHECK(v.fixture.config.starts_with("configs/"));
    CHECK(v.fixture.batch >= 1);
  }
}

TEST_CASE("variants: the compiled-in registry is references/models/known_bugs.toml as it is now") {
  // CMAKE_CONFIGURE_DEPENDS rebuilds it on every edit; a stale build would explain bugs with old text.
  std::ifstream in(std::filesystem::path(PARITY_SOURCE_DIR) / "references" / "models" / "known_bugs.toml",
                   std::ios::binary);
  REQUIRE(in);
  const std::string on_disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(known_bugs_toml() == on_disk);
}

namespace {

// The registry split into its header and one block per [[bug]] (each starting with "[[bug]]").
struct Blocks {
  std::string header;
  std::vector<std::string> bugs;

  explicit Blocks(std::string_view text) {
    const std::string_view mark = "\n[[bug]]\n";
    size_t at = text.find(mark);
    REQUIRE(at != std::string_view::npos);
    header = std::string(text.substr(0, at + 1));
    while (at != std::string_view::npos) {
      const size_t next = text.find(mark, at + 1);
      bugs.emplace_back(text.substr(at + 1, next == std::string_view::npos ? std::string_view::npos : next - at));
      at = next;
    }
  }
  std::string text() const {
    std::string out = header;
    for (const std::string& b : bugs) out += b;
    return out;
  }
};

// `block` with its line starting with `prefix` replaced by `line` (removed when empty).
std::string with_line(std::string block, std::string_view prefix, std::string_view line) {
  const size_t at = block.find("\n" + std::string(prefix));
  REQUIRE_MESSAGE(at != std::string::npos, prefix);
  const size_t end = block.find('\n', at + 1);
  block.replace(at + 1, end - at, line.empty() ? "" : std::string(line) + "\n");
  return block;
}

std::string error_of(const std::string& text) {
  try {
    parse_known_bugs(text, "test.toml");
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("known_bugs.toml: the real text parses, and a malformed one is refused naming the entry and the field") {
  const Blocks real(known_bugs_toml());
  REQUIRE(real.bugs.size() == static_cast<size_t>(Variant::kCount));
  REQUIRE(real.text() == known_bugs_toml());
  CHECK(parse_known_bugs(real.text(), "test.toml").size() == real.bugs.size());
  // Entries in any order: the result is in enum order.
  Blocks reversed = real;
  std::reverse(reversed.bugs.begin(), reversed.bugs.end());
  const std::vector<VariantInfo> parsed = parse_known_bugs(reversed.text(), "test.toml");
  for (size_t i = 0; i < parsed.size(); ++i) CHECK(static_cast<size_t>(parsed[i].variant) == i);

  const auto mutated = [&](size_t index, std::string_view prefix, std::string_view line) {
    Blocks b = real;
    b.bugs[index] = with_line(b.bugs[index], prefix, line);
    return error_of(b.text());
  };
  // Entry 2 is gemma4_no_final_softcap (enum order, as the file lists them).
  const std::string entry = "bug \"gemma4_no_final_softcap\"";
  REQUIRE(real.bugs[2].find("name = \"gemma4_no_final_softcap\"") != std::string::npos);
  struct Case {
    std::string_view prefix, line, message;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"source = ", "", "field \"source\" is missing"},
           {"title = ", "title = \"  \"", "field \"title\" must not be empty"},
           {"lives_at = ", "lives_at = 3", "field \"lives_at\" must be a string"},
           {"family = ", "family = \"llama\"",
            "field \"family\" must be one of \"olmoe\", \"gemma4\", \"any\", got \"llama\""},
           {"first_failure = ", "first_failure = { isolated = \"/outputs/logits\" }",
            "field \"first_failure.chained\" is missing"},
           {"first_failure = ", "first_failure = \"/outputs/logits\"", "field \"first_failure\" must be a table"},
           {"lives_in = ", "lives_in = \"x\"\nlive_at = \"y\"", "unknown field \"live_at\""},
           {"seed = ", "", "field \"fixture.seed\" is missing"},
           {"seed = ", "seed = \"11\"", "field \"fixture.seed\" must be an integer"},
           {"batch = ", "batch = 0", "field \"fixture.batch\" must be at least 1, got 0"},
           {"dtype = ", "dtype = \"float16\"", "field \"fixture.dtype\" must be one of"},
           {"file = ", "file = \"gemma4_no_final_softcap\"", "field \"fixture.file\" must name an .h5 file"},
           {"config = ", "config = \"configs/gemma4_zoo.json\"\nmodel = \"x\"", "unknown field \"fixture.model\""},
       }) {
    CAPTURE(c.line);
    const std::string error = mutated(2, c.prefix, c.line);
    CHECK_MESSAGE(error.starts_with("[test.toml:"), error);
    CHECK_MESSAGE(error.find(entry) != std::string::npos, error);
    CHECK_MESSAGE(error.find(c.message) != std::string::npos, error);
  }

  // A [[bug]] without a name is named by its position.
  CHECK(mutated(4, "name = ", "").find("bug #5: field \"name\" is missing") != std::string::npos);
  // A name no enum value is bound to (an entry without its variant).
  const std::string orphan = mutated(4, "name = ", "name = \"gemma4_new_bug\"");
  CHECK_MESSAGE(orphan.find("bug \"gemma4_new_bug\": no enum value is bound to this name") != std::string::npos,
                orphan);
  // An enum value without an entry.
  Blocks missing = real;
  missing.bugs.erase(missing.bugs.begin() + 8);
  CHECK(error_of(missing.text()).find("no [[bug]] entry named \"gemma4_layer_scalar_ignored\"") != std::string::npos);
  // A name twice.
  Blocks twice = real;
  twice.bugs.push_back(real.bugs[0]);
  const std::string repeated = error_of(twice.text());
  CHECK_MESSAGE(
      repeated.find("bug \"olmoe_router_topk_softmax\": the name is used twice (first at line") != std::string::npos,
      repeated);
  // Not TOML, or not the registry's shape.
  CHECK(error_of(real.header + "[[bug]]\nname = \"x\n").starts_with("[test.toml:"));
  CHECK(error_of(real.header).find("no [[bug]] entries") != std::string::npos);
  CHECK(error_of("bugs = 1\n" + real.text()).find("unknown top-level key \"bugs\"") != std::string::npos);
}

TEST_CASE("variants: find_variant round-trips every name and knows no other") {
  for (const VariantInfo& v : known_variants()) {
    const VariantInfo* found = find_variant(v.name);
    REQUIRE(found != nullptr);
    CHECK(found->variant == v.variant);
  }
  CHECK(find_variant("") == nullptr);
  CHECK(find_variant("hf") == nullptr);
  CHECK(find_variant("gemma4_no_final_softcap ") == nullptr);
  CHECK(find_variant("olmoe_router_topk_softmax")->variant == Variant::kOlmoeRouterTopkSoftmax);
  CHECK(find_variant("rmsnorm_one_plus_weight")->variant == Variant::kRmsNormOnePlusWeight);
}

TEST_CASE("variants: variant_applies by family, and the Variants set") {
  const VariantInfo& olmoe = variant_info(Variant::kOlmoeRouterTopkSoftmax);
  const VariantInfo& gemma4 = variant_info(Variant::kGemma4RouterFoldedBf16);
  const VariantInfo& any = variant_info(Variant::kRmsNormOnePlusWeight);
  CHECK(variant_applies(olmoe, "olmoe"));
  CHECK_FALSE(variant_applies(olmoe, "gemma4"));
  CHECK(variant_applies(gemma4, "gemma4"));
  CHECK_FALSE(variant_applies(gemma4, "olmoe"));
  CHECK(variant_applies(any, "olmoe"));
  CHECK(variant_applies(any, "gemma4"));

  const Variants none;
  CHECK(none.none());
  const Variants one = Variants::only(Variant::kGemma4LayerScalarIgnored);
  CHECK_FALSE(one.none());
  for (const VariantInfo& v : known_variants()) CHECK(one.has(v.variant) == (v.variant == Variant::kGemma4LayerScalarIgnored));
}

TEST_CASE("contiguous partial rope: the first 2A dims rotate in pairs (j, j + A), the rest pass through") {
  // D = 8, A = 2: a proportional table rotates columns 0, 1 (and 4, 5: the same angles), 2, 3 stay 1 / 0.
  const double a0 = 0.3, a1 = 1.1;
  ops::RotaryTables t{Array({1, 1, 8}, {std::cos(a0), std::cos(a1), 1, 1, std::cos(a0), std::cos(a1), 1, 1}),
                      Array({1, 1, 8}, {std::sin(a0), std::sin(a1), 0, 0, std::sin(a0), std::sin(a1), 0, 0})};
  const std::vector<double> x0 = {1, 2, 3, 4, 5, 6, 7, 8};
  Array x({1, 1, 1, 8}, x0);
  ops::apply_rope_contiguous_partial(x, t, 2, Numerics(Precision::F64));
  const std::vector<double> want = {
      1 * std::cos(a0) - 3 * std::sin(a0), 2 * std::cos(a1) - 4 * std::sin(a1),  // j = 0, 1 with j + 2
      3 * std::cos(a0) + 1 * std::sin(a0), 4 * std::cos(a1) + 2 * std::sin(a1),  // j + 2 = 2, 3
      5, 6, 7, 8};                                                              // dims 2A.. untouched
  for (int i = 0; i < 8; ++i) {
    CAPTURE(i);
    CHECK(x.data[i] == doctest::Approx(want[i]).epsilon(1e-15));
  }
  // HF's layout on the same table pairs j with j + D/2 = j + 4 instead: dims 0, 1, 4, 5 move.
  Array hf({1, 1, 1, 8}, x0);
  ops::apply_rope(hf, t, Numerics(Precision::F64));
  CHECK(hf.data[0] == doctest::Approx(1 * std::cos(a0) - 5 * std::sin(a0)));
  CHECK(hf.data[2] == 3);
  CHECK(hf.data[4] == doctest::Approx(5 * std::cos(a0) + 1 * std::sin(a0)));
  CHECK(ops::proportional_rotated_angles(8, 0.5) == 2);
  CHECK(ops::proportional_rotated_angles(512, 0.25) == 64);
  CHECK(ops::proportional_rotated_angles(40, 0.3) == 6);  // int(0.3 * 40 // 2)
}

TEST_CASE("contiguous partial rope with A = D/2 is HF's rope, bit for bit") {
  std::mt19937 rng(3);
  const Numerics bf16(Precision::BF16);
  const IndexArray positions{{2, 3}, {0, 1, 2, 5, 6, 7}};
  const ops::RotaryTables t = ops::rotary_tables(positions, ops::default_inv_freq(8, 100.0, bf16), 1.0, bf16);
  Array x = ops::test::random_array({2, 3, 2, 8}, rng);
  bf16.act(x);
  Array hf = x;
  ops::apply_rope(hf, t, bf16);
  ops::apply_rope_contiguous_partial(x, t, 4, bf16);
  CHECK(x.data == hf.data);
  CHECK_THROWS_AS(ops::apply_rope_contiguous_partial(x, t, 5, bf16), Error);
}

TEST_CASE("top-k-only router softmax: the selected logits alone, summing to 1") {
  const Numerics f64(Precision::F64);
  const Array logits({1, 4}, {2.0, 1.0, 0.0, -1.0});
  const IndexArray index{{1, 2}, {0, 1}};
  const Array w = ops::softmax_top_k_logits(logits, index, /*renormalise=*/false, f64);
  const double e = std::exp(1.0);
  CHECK(w.data[0] == doctest::Approx(e / (e + 1)).epsilon(1e-15));  // e² / (e² + e)
  CHECK(w.data[1] == doctest::Approx(1 / (e + 1)).epsilon(1e-15));
  // HF: the full softmax at the top-k, which sums to less than 1 without norm_topk_prob.
  const Array hf = ops::gather_top_k(ops::router_probs(logits, f64), index, false, f64);
  CHECK(hf.data[0] + hf.data[1] < 0.95);
  // With norm_topk_prob both agree (the bug is invisible there).
  const Array renormed = ops::gather_top_k(ops::router_probs(logits, f64), index, true, f64);
  const Array buggy = ops::softmax_top_k_logits(logits, index, true, f64);
  CHECK(buggy.data[0] == doctest::Approx(renormed.data[0]).epsilon(1e-15));
  CHECK(buggy.data[1] == doctest::Approx(renormed.data[1]).epsilon(1e-15));
  // Float32 throughout: every weight is a float.
  const Array f32 = ops::softmax_top_k_logits(logits, index, false, Numerics(Precision::F32));
  for (double v : f32.data) CHECK(v == static_cast<double>(static_cast<float>(v)));
}

TEST_CASE("bf16 router fold: f32 products, then round-to-nearest-even to bfloat16") {
  // bf16 keeps 7 fraction bits: between 1 and 2 it steps by 2^-7, so 1 + 2^-8 is a tie.
  const Weight w{{1, 4}, {1.0f, 1.0f, 1.0f, -3.0f}};
  const Weight scale{{4}, {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, 1.0f + 0x1p-9f, 0.5f}};
  const Weight folded = ops::fold_scale_bf16(w, scale, /*root=*/1.0);
  CHECK(folded.data[0] == 1.0f);                // tie, rounds to the even 1.0
  CHECK(folded.data[1] == 1.0f + 2 * 0x1p-7f);  // tie between 1 + 2^-7 (odd) and 1 + 2^-6 (even)
  CHECK(folded.data[2] == 1.0f);                // below the tie
  CHECK(folded.data[3] == -1.5f);               // exact
  // The root enters as float32, and scale · root is rounded to float32 before it meets W.
  const double root = std::pow(3.0, -0.5);
  const Weight one{{1, 1}, {0.7f}};
  const Weight s{{1}, {1.3f}};
  const float factor = static_cast<float>(1.3f * static_cast<double>(static_cast<float>(root)));
  const float product = static_cast<float>(0.7f * static_cast<double>(factor));
  CHECK(ops::fold_scale_bf16(one, s, root).data[0] == bf16_to_f32(f32_to_bf16(product)));
  CHECK_THROWS_AS(ops::fold_scale_bf16(w, Weight{{3}, {1, 1, 1}}, 1.0), Error);
}

TEST_CASE("(1 + w) norm: the offset enters where the weight does") {
  const Array x({1, 2}, {3.0, 4.0});  // rms √12.5
  const Weight w{{2}, {0.5f, -1.0f}};
  const double inv = 1.0 / std::sqrt(12.5);
  for (auto placement : {ops::NormWeight::kAfterCast, ops::NormWeight::kInFloat32}) {
    const Array y = ops::rms_norm(x, &w, 0.0, placement, Numerics(Precision::F64), "norm", 1.0);
    CHECK(y.data[0] == doctest::Approx(3 * inv * 1.5).epsilon(1e-15));
    CHECK(y.data[1] == 0.0);  // 1 + (-1)
    const Array hf = ops::rms_norm(x, &w, 0.0, placement, Numerics(Precision::F64), "norm");
    CHECK(hf.data[1] == doctest::Approx(-4 * inv).epsilon(1e-15));
  }
  // OLMoE's (1 + w) is computed in the weight's dtype: bf16 loses 2^-9, Gemma-4's float32 keeps it.
  const Weight tiny{{2}, {0x1p-9f, 0x1p-9f}};
  const Array ones({1, 2}, {1.0, 1.0});
  CHECK(ops::rms_norm(ones, &tiny, 0.0, ops::NormWeight::kAfterCast, Numerics(Precision::BF16), "n", 1.0).data[0] ==
        1.0);
  CHECK(ops::rms_norm(ones, &tiny, 0.0, ops::NormWeight::kInFloat32, Numerics(Precision::F32), "n", 1.0).data[0] ==
        1.0 + 0x1p-9);
}

}  // namespace parity
