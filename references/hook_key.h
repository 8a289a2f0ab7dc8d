// Hook keys: the one parser of the names under which HF tensors are dumped and compared
// (golden/README.md "Hook keys"). A key is an HF module path, optionally followed by a slot:
//   model.layers.0.mlp                    the module's output
//   model.layers.0.mlp@in                 its first positional input (@in1, @in2, ...: the others)
//   model.layers.0.self_attn@in.attention_mask   a keyword input
//   model.layers.0.mlp.gate@top_k_index   a named output slot (@top_k_weights, @router_probs,
//                                         @attn_weights, @last_hidden_state, @sliding_attention.cos, ...)
//   /outputs/logits                       the model's final outputs (/outputs/<name>)
// Module paths start with a text prefix, "model." or, in a multimodal checkpoint, "model.language_model.".
// Everything here is plain string work (no I/O), so the reference, the gate and the reports share it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace parity {

enum class HookKind {
  kOutput,       // "module": the module's (first) output
  kInput,        // "module@in", "module@in2", "module@in.<kwarg>"
  kSlot,         // "module@<name>": a named output or intermediate (top_k_index, attn_weights, ...)
  kModelOutput,  // "/outputs/<name>"
};

struct HookKey {
  std::string module;    // "model.layers.0.mlp"; "" for /outputs/*
  std::string slot;      // what follows '@' ("in2", "in.attention_mask", "top_k_index"); the name for /outputs/*
  HookKind kind = HookKind::kOutput;
  int input_index = -1;  // kInput: 0 for @in and @in.<kwarg>, N for @inN
  std::string kwarg;     // kInput: the keyword of @in.<kwarg>
  int64_t layer = -1;    // the decoder layer ("...layers.<n>" followed by '.', '@' or the end), or -1
  std::string in_layer;  // inside that layer: "mlp.experts", "@in1", "(layer)" for the layer itself; "" outside
};

// Never throws: a key that is not of this grammar parses as a module output of that name.
HookKey parse_hook_key(std::string_view key);

// HF's inputs to a module: "x@in", "x@in2", "x@in.attention_mask" (not "x@index" or "x@inner").
bool is_input_key(std::string_view key);
// "/outputs/<name>".
bool is_model_output_key(std::string_view key);
// Whether `key` is `module` itself, one of its slots or a submodule's: "model.layers.1" owns
// "model.layers.1@in" and "model.layers.1.mlp", not "model.layers.10.mlp".
bool is_module_key(std::string_view module, std::string_view key);
// The decoder layer of a key, or -1 ("xlayers.3" and indices beyond int64 name no layer).
int64_t decoder_layer_of(std::string_view key);

// "model.language_model." or "model." when the key starts with it, else "".
std::string_view text_prefix(std::string_view key);
// The final norm's output also appears as the base model's last_hidden_state: for
// "<prefix>norm" the key "<prefix without its dot>@last_hidden_state", else nullopt.
std::optional<std::string> last_hidden_state_alias(std::string_view module);

}  // namespace parity
