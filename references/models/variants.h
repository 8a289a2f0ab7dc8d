// Known bugs the reference can reproduce on demand: each variant switches one step of the math to
// what a buggy engine computes, so `parity diagnose` can replay a target dump under each one and
// say which bug it matches. All are off by default; `parity check` never turns one on.
//
// What is known about each bug (its name, story, source, where it lives, its zoo fixture and the
// first failure the gate must report) is written once, in the registry models/known_bugs.toml,
// compiled into the library (references/CMakeLists.txt) and parsed here into VariantInfo. The enum
// stays because the math switches on it; variants.cpp binds each value to its entry by name.
//
// Every variant has a twin in the bug zoo (harness/python/parity/zoo/patches.py, same name): a
// patch that plants the same bug into a real HF model at dump time. The two must compute the same
// thing, so a zoo fixture replayed under its variant passes the built-in budget.
#pragma once

#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace parity {

enum class Variant {
  kOlmoeRouterTopkSoftmax,         // OLMoE router weights: softmax over the k selected logits only
  kGemma4RopeContiguousPartial,    // full layers: inv_freq[:A] on the first 2A dims, pairs (j, j + A)
  kGemma4NoFinalSoftcap,           // final_logit_softcapping not applied
  kGemma4RouterOnNormedInput,      // router fed pre_feedforward_layernorm_2's output
  kGemma4MlpOnPreFeedforward2,     // dense MLP fed pre_feedforward_layernorm_2's output
  kRmsNormOnePlusWeight,           // RMSNorms with a weight scale by (1 + w)
  kGemma4AttentionScaleInvSqrtD,   // attention scores scaled by head_dim^-1/2 instead of 1
  kGemma4KEqVAfterNormRope,        // k_eq_v values taken after k_norm and RoPE
  kGemma4LayerScalarIgnored,       // layer_scalar not applied to the layer output
  kGemma4RouterFoldedBf16,         // router.scale * H^-1/2 folded into router.proj, rounded to bf16
  // The bf16 cast-point bugs: each changes where a bf16 run rounds (a float32 run computes the same).
  kGemma4EmbedScaleNotBf16,        // embed_scale applied as float32, not rounded to bf16 first
  kGemma4AttentionSoftmaxBf16,     // attention softmax computed in bf16 (exp, sum, quotient rounded)
  kGemma4RmsNormBf16,              // every RMSNorm computed in bf16 instead of float32
  kGemma4ResidualFp32RoundedLate,  // a layer's residual adds accumulated in fp32, rounded once at the end
  kGemma4RouterBf16,               // router softmax and renormalisation in bf16 instead of float32
  kCount
};

// How a bug's zoo fixture is made (python -m parity.zoo.golden): a random model of `config` with
// the bug planted, run on random input ids.
struct ZooFixtureSpec {
  std::string file;    // relative to golden/zoo/
  std::string config;  // relative to golden/
  int64_t seed = 0;    // weights; the input ids use seed + 1
  int64_t batch = 0;
  int64_t seq_len = 0;
  std::string dtype;   // the run dtype: "float32" or "bfloat16"
};

// One [[bug]] entry of models/known_bugs.toml (its comments say more about each field).
struct VariantInfo {
  Variant variant;
  std::string name;      // "olmoe_router_topk_softmax": CLI, JSON, case files, the zoo
  std::string family;    // "olmoe", "gemma4", or "any"
  std::string title;     // one line: what the buggy engine computes
  std::string lives_in;  // the HF module (path pattern) where the bug lives
  std::string story;     // one paragraph: the bug, how it showed up, and its fix
  std::string source;    // the public PR or issue the story cites (or why there is none)
  // The first failing hook (a hook glob, as cases' [expect]) of the zoo fixture under HF's math.
  std::string first_failure_isolated;
  std::string first_failure_chained;
  std::string lives_at;  // a Python regex of the first failing hook on unseen configs (diagnose_test.py)
  ZooFixtureSpec fixture;
};

// Every known variant, in enum order. These four parse the compiled-in registry at their first call
// and throw parity::Error if it is malformed (a build whose tests pass never is).
const std::vector<VariantInfo>& known_variants();
const VariantInfo& variant_info(Variant variant);
// nullptr when no variant has this name.
const VariantInfo* find_variant(std::string_view name);
// Whether a variant applies to a model of this family ("olmoe", "gemma4").
bool variant_applies(const VariantInfo& info, std::string_view family);

// The registry's text as compiled in (models/known_bugs.toml when the library was built).
std::string_view known_bugs_toml();
// Parses a registry in the format of models/known_bugs.toml into one VariantInfo per enum value, in
// enum order. Throws parity::Error naming the entry and the field of the first problem: a TOML
// syntax error, a field missing, empty, mistyped or unknown, a name twice, a name no enum value is
// bound to, an enum value without an entry. known_variants() is this on known_bugs_toml().
std::vector<VariantInfo> parse_known_bugs(std::string_view toml_text, std::string_view source);

// The set of variants switched on; empty = HF's math.
class Variants {
 public:
  Variants() = default;
  static Variants only(Variant variant) {
    Variants v;
    v.on_.set(static_cast<size_t>(variant));
    return v;
  }
  bool has(Variant variant) const { return on_.test(static_cast<size_t>(variant)); }
  bool none() const { return on_.none(); }

 private:
  std::bitset<static_cast<size_t>(Variant::kCount)> on_;
};

}  // namespace parity
