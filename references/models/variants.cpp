#include "variants.h"

#include <algorithm>

#include "error.h"

namespace parity {

namespace {

// In enum order; the names are the bug zoo's (harness/python/parity/zoo/patches.py).
const std::vector<VariantInfo>& registry() {
  static const std::vector<VariantInfo> variants = {
      {Variant::kOlmoeRouterTopkSoftmax, "olmoe_router_topk_softmax", "olmoe",
       "router weights = softmax over the k selected logits only (as if norm_topk_prob were always true)",
       "model.layers.N.mlp.gate",
       "The engine picks the same top-k experts as HF but weights them by a softmax over the k selected "
       "logits alone, which always sums to 1: it behaves as if norm_topk_prob were true. HF's OlmoeTopKRouter "
       "softmaxes over ALL experts, gathers those probabilities at the top-k and renormalises only when "
       "norm_topk_prob is set; OLMoE ships norm_topk_prob=false, so its weights sum to less than 1. The top-k "
       "softmax over-weights every MoE block by about 1 / (sum of the top-k probabilities), compounding with "
       "depth: mlxcel PR #391, where OLMoE-1B-7B's greedy output started coherent and drifted into "
       "non-sequiturs. Fix: softmax over all experts, gather at the top-k, renormalise only when "
       "norm_topk_prob."},
      {Variant::kGemma4RopeContiguousPartial, "gemma4_rope_contiguous_partial", "gemma4",
       "partial RoPE rotates the first 2A dims in pairs (j, j + A) instead of (j, j + head_dim/2)",
       "model.layers.N.self_attn of proportional partial-RoPE (full_attention) layers",
       "On Gemma-4's full-attention layers (rope_type \"proportional\", partial_rotary_factor 0.25) HF builds "
       "a head_dim/2-wide inv_freq whose first A entries are nonzero and rotates the WHOLE head with "
       "rotate_half: dim j pairs with j + head_dim/2, so dims 0..A-1 rotate with head_dim/2..head_dim/2+A-1 and "
       "the rest pass through. The engine uses an A-wide table with rotary_percent 0.25, the Megatron layout: "
       "the first 2A dims rotate in pairs (j, j + A) and dims 2A.. pass through, so q and k of the global "
       "layers get the wrong rotation. The Megatron-bridge Gemma-4 PR measured train-inference lpdiff 0.10 "
       "from this bug alone. Fix: zero-pad inv_freq to head_dim/2 and rotate the whole head "
       "(rotary_percent 1.0)."},
      {Variant::kGemma4NoFinalSoftcap, "gemma4_no_final_softcap", "gemma4",
       "final_logit_softcapping not applied", "the head: /outputs/logits",
       "The engine returns the lm_head output as the logits, although the config sets final_logit_softcapping "
       "c (30 on the real models) and HF computes logits = c * tanh(logits / c). A patch in the Megatron-bridge "
       "Gemma-4 PR had stubbed the softcap to a no-op \"to match sglang\", leaving tail-token logits "
       "over-extreme against the inference engine (fix 3 of that PR). Every hook matches up to lm_head; only "
       "/outputs/logits and the logprobs differ. Fix: logits = c * tanh(logits / c)."},
      {Variant::kGemma4RouterOnNormedInput, "gemma4_router_on_normed_input", "gemma4",
       "the router reads pre_feedforward_layernorm_2's output instead of the raw residual",
       "model.layers.N.router's input (the decoder layer's MoE wiring)",
       "In HF's Gemma-4 MoE layer the router sees the un-normed post-attention residual (it applies its own "
       "weight-less norm, scale and H^-1/2), while the experts see pre_feedforward_layernorm_2(residual). The "
       "engine computes normed2 = pre_feedforward_layernorm_2(residual) once and feeds it to both the router "
       "and the experts, so the router normalises an already normed, w2-scaled input and picks and weights "
       "experts from the wrong scores (NeMo Automodel #1895; fix 1 of the Megatron-bridge Gemma-4 PR: \"the "
       "router sees the un-normed post-attention residual\"). The router@in wiring check fails on it. Fix: "
       "feed the router the raw residual."},
      {Variant::kGemma4MlpOnPreFeedforward2, "gemma4_mlp_on_pre_feedforward_layernorm_2", "gemma4",
       "the dense MLP reads pre_feedforward_layernorm_2's output instead of pre_feedforward_layernorm's",
       "model.layers.N.mlp's input (the decoder layer's MoE wiring)",
       "HF's Gemma-4 MoE layer has two pre-norms on the same residual: pre_feedforward_layernorm (w1) feeds the "
       "dense, shared-expert MLP and pre_feedforward_layernorm_2 (w2) feeds the routed experts. The engine "
       "feeds both from pre_feedforward_layernorm_2, so \"the shared expert ends up receiving unit_norm(x) * "
       "w_pffl_2 instead of unit_norm(x) * w_pffl_1\" (first commit of the Megatron-bridge Gemma-4 PR). "
       "post_feedforward_layernorm_1 absorbs most of the magnitude, so it only cost lpdiff 0.02-0.05 and was "
       "called production-grade. The mlp@in wiring check fails on it. Fix: the dense MLP reads "
       "pre_feedforward_layernorm (w1)."},
      {Variant::kRmsNormOnePlusWeight, "rmsnorm_one_plus_weight", "any",
       "every RMSNorm with a weight scales by (1 + w) instead of w", "the first RMSNorm with a weight",
       "Gemma 1-3 store each RMSNorm scale minus one and compute x_hat * (1 + w); Gemma-4 (like OLMoE and "
       "Llama) stores the scale itself and computes x_hat * w. Norm code ported from Gemma-3 scales every "
       "activation by about (1 + w) instead: Gemma-4 as x_hat_f32 * (1 + w.float()) then cast, OLMoE as "
       "(1 + w) * x_hat.to(dtype). "
       "Weight-less norms (Gemma-4's v_norm and router.norm) are unchanged. The first weighted norm of the "
       "forward fails. Fix: multiply by w."},
      {Variant::kGemma4AttentionScaleInvSqrtD, "gemma4_attention_scale_inv_sqrt_d", "gemma4",
       "attention scores scaled by head_dim^-1/2 instead of 1.0", "model.layers.N.self_attn",
       "The engine multiplies q.k by head_dim^-1/2 (that layer's head_dim), the default of "
       "eager_attention_forward and of most engines' attention kernels. Gemma-4 passes scaling = 1.0: its "
       "q_norm and k_norm already fix the scale and query_pre_attn_scalar is gone, so the engine's attention "
       "is far too flat on every layer. Fix: pass scale 1.0."},
      {Variant::kGemma4KEqVAfterNormRope, "gemma4_k_eq_v_after_norm_and_rope", "gemma4",
       "K=V values taken from the keys after k_norm and RoPE instead of the raw k_proj output",
       "model.layers.N.self_attn of attention_k_eq_v layers computing their own K/V",
       "With attention_k_eq_v, Gemma-4's full-attention layers have no v_proj: HF ties the values to the RAW "
       "k_proj output, then applies the weight-less v_norm. The engine implements the tie by reusing the "
       "finished key tensor, after k_norm and RoPE, so the values carry k_norm's weight and the rotation. "
       "The v_norm@in wiring check fails on it. Fix: tie the values to the raw projection."},
      {Variant::kGemma4LayerScalarIgnored, "gemma4_layer_scalar_ignored", "gemma4",
       "the decoder layer's output not multiplied by layer_scalar", "model.layers.N (the layer output)",
       "Every Gemma-4 decoder layer ends by multiplying its output by layer_scalar, a persistent buffer rather "
       "than a parameter. A bridge that maps no weight for it keeps the value HF initialises it to, 1.0, and "
       "silently never applies the checkpoint's scalar: every layer output is off by that factor while each "
       "module inside the layer still matches. Fix: load layer_scalar and apply it."},
      {Variant::kGemma4RouterFoldedBf16, "gemma4_router_folded_bf16", "gemma4",
       "router scale and H^-1/2 folded into router.proj.weight, rounded to bf16", "model.layers.N.router",
       "HF's Gemma-4 router computes proj(norm(x) * scale * H^-1/2) unfused, in the run dtype. The engine "
       "folds scale * H^-1/2 into router.proj.weight at load time and stores the product in bfloat16, so proj "
       "reads the norm's output directly with weight bf16(W * scale * H^-1/2): every weight keeps 8 "
       "significant bits, and the router logits, then the top-k choices and weights, drift. The first commit "
       "of the Megatron-bridge Gemma-4 PR fused \"router scale/root_size/w_pffl_2 into router.proj.weight\" "
       "this way, which \"blew up on near-zero channels\" (of w_pffl_2) until the router was de-fused. "
       "Softmax, top-k, renormalisation and per_expert_scale are as HF. Fix: keep the router unfused in fp32."},
  };
  return variants;
}

}  // namespace

const std::vector<VariantInfo>& known_variants() { return registry(); }

const VariantInfo& variant_info(Variant variant) {
  const auto i = static_cast<size_t>(variant);
  PARITY_CHECK(i < registry().size(), "[variants] no variant with index {}", i);
  return registry()[i];
}

const VariantInfo* find_variant(std::string_view name) {
  const auto& all = registry();
  auto it = std::find_if(all.begin(), all.end(), [&](const VariantInfo& v) { return v.name == name; });
  return it == all.end() ? nullptr : &*it;
}

bool variant_applies(const VariantInfo& info, std::string_view family) {
  return info.family == "any" || info.family == family;
}

}  // namespace parity
