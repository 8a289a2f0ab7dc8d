// Known bugs the reference can reproduce on demand: each variant switches one step of the math to
// what a buggy engine computes, so `parity diagnose` can replay a target dump under each one and
// say which bug it matches. All are off by default; `parity check` never turns one on.
//
// Every variant has a twin in the bug zoo (harness/python/parity/zoo/patches.py, same name): a
// patch that plants the same bug into a real HF model at dump time. The two must compute the same
// thing, so a zoo fixture replayed under its variant passes the built-in budget.
#pragma once

#include <bitset>
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
  kCount
};

struct VariantInfo {
  Variant variant;
  std::string_view name;      // "olmoe_router_topk_softmax": CLI, JSON, case files, the zoo
  std::string_view family;    // "olmoe", "gemma4", or "any"
  std::string_view title;     // one line: what the buggy engine computes
  std::string_view lives_in;  // the HF module (path pattern) where the bug lives
  std::string_view story;     // one paragraph: the bug, how it showed up, and its fix
};

// Every known variant, in enum order.
const std::vector<VariantInfo>& known_variants();
const VariantInfo& variant_info(Variant variant);
// nullptr when no variant has this name.
const VariantInfo* find_variant(std::string_view name);
// Whether a variant applies to a model of this family ("olmoe", "gemma4").
bool variant_applies(const VariantInfo& info, std::string_view family);

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
