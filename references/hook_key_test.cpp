#include "hook_key.h"

#include <doctest/doctest.h>

#include <string>

using namespace parity;

TEST_CASE("hook keys: module outputs, inputs, slots and model outputs") {
  HookKey h = parse_hook_key("model.layers.3.mlp.experts");
  CHECK(h.kind == HookKind::kOutput);
  CHECK(h.module == "model.layers.3.mlp.experts");
  CHECK(h.layer == 3);
  CHECK(h.in_layer == "mlp.experts");

  h = parse_hook_key("model.layers.3@in1");
  CHECK(h.kind == HookKind::kInput);
  CHECK(h.input_index == 1);
  CHECK(h.module == "model.layers.3");
  CHECK(h.in_layer == "@in1");

  h = parse_hook_key("model.layers.0.self_attn@in.attention_mask");
  CHECK(h.kind == HookKind::kInput);
  CHECK(h.input_index == 0);
  CHECK(h.kwarg == "attention_mask");

  h = parse_hook_key("model.layers.12.mlp.gate@top_k_index");
  CHECK(h.kind == HookKind::kSlot);
  CHECK(h.slot == "top_k_index");
  CHECK(h.layer == 12);

  h = parse_hook_key("/outputs/logits");
  CHECK(h.kind == HookKind::kModelOutput);
  CHECK(h.slot == "logits");
  CHECK(h.layer == -1);

  CHECK(parse_hook_key("model.layers.2").in_layer == "(layer)");
  CHECK(parse_hook_key("model.rotary_emb@sliding_attention.cos").kind == HookKind::kSlot);
}

TEST_CASE("hook keys: what is an input, which module owns a key") {
  CHECK(is_input_key("x@in"));
  CHECK(is_input_key("x@in12"));
  CHECK(is_input_key("x@in.position_embeddings"));
  CHECK_FALSE(is_input_key("x@index"));
  CHECK_FALSE(is_input_key("x@inner"));
  CHECK_FALSE(is_input_key("x.in_proj"));
  CHECK_FALSE(is_input_key("/outputs/logits"));

  CHECK(is_module_key("model.layers.1", "model.layers.1"));
  CHECK(is_module_key("model.layers.1", "model.layers.1@in"));
  CHECK(is_module_key("model.layers.1", "model.layers.1.mlp"));
  CHECK_FALSE(is_module_key("model.layers.1", "model.layers.10.mlp"));
}

TEST_CASE("hook keys: decoder layers, anchored on a dot, never out of range") {
  CHECK(decoder_layer_of("model.language_model.layers.7.self_attn") == 7);
  CHECK(decoder_layer_of("model.xlayers.3.mlp") == -1);
  CHECK(decoder_layer_of("model.layers.x.mlp") == -1);
  CHECK(decoder_layer_of("model.layers.99999999999999999999999.mlp") == -1);
  CHECK(decoder_layer_of("model.layers.4x") == -1);
  CHECK(decoder_layer_of("model.norm") == -1);
  // A long hostile key is parsed in linear time without recursion.
  CHECK(decoder_layer_of(std::string(1 << 20, 'a') + ".layers.5") == 5);
}

TEST_CASE("hook keys: the text prefix and the final norm's last_hidden_state alias") {
  CHECK(text_prefix("model.language_model.norm") == "model.language_model.");
  CHECK(text_prefix("model.norm") == "model.");
  CHECK(text_prefix("lm_head") == "");
  CHECK(last_hidden_state_alias("model.norm") == "model@last_hidden_state");
  CHECK(last_hidden_state_alias("model.language_model.norm") == "model.language_model@last_hidden_state");
  CHECK_FALSE(last_hidden_state_alias("model.layers.0.norm").has_value());
  CHECK_FALSE(last_hidden_state_alias("lm_head").has_value());
}
