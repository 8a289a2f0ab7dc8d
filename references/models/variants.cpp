#include "variants.h"

#include <algorithm>
#include <array>
#include <initializer_list>
#include <optional>
#include <utility>

#include <fmt/ranges.h>
#include <toml++/toml.h>

#include "error.h"
#include "known_bugs_toml.h"  // generated from models/known_bugs.toml (references/CMakeLists.txt)

namespace parity {

namespace {

constexpr size_t kVariantCount = static_cast<size_t>(Variant::kCount);

// The one place the enum (what the math switches on) meets the registry (everything else): each
// enum value's VariantInfo is the [[bug]] entry of models/known_bugs.toml with this name. Listed in
// enum order; the static_assert below catches a value left out or out of place at compile time,
// parse_known_bugs a name with no entry (or an entry with no name here) at the first use.
constexpr std::array<std::pair<Variant, std::string_view>, kVariantCount> kRegistryNames{{
    {Variant::kOlmoeRouterTopkSoftmax, "olmoe_router_topk_softmax"},
    {Variant::kGemma4RopeContiguousPartial, "gemma4_rope_contiguous_partial"},
    {Variant::kGemma4NoFinalSoftcap, "gemma4_no_final_softcap"},
    {Variant::kGemma4RouterOnNormedInput, "gemma4_router_on_normed_input"},
    {Variant::kGemma4MlpOnPreFeedforward2, "gemma4_mlp_on_pre_feedforward_layernorm_2"},
    {Variant::kRmsNormOnePlusWeight, "rmsnorm_one_plus_weight"},
    {Variant::kGemma4AttentionScaleInvSqrtD, "gemma4_attention_scale_inv_sqrt_d"},
    {Variant::kGemma4KEqVAfterNormRope, "gemma4_k_eq_v_after_norm_and_rope"},
    {Variant::kGemma4LayerScalarIgnored, "gemma4_layer_scalar_ignored"},
    {Variant::kGemma4RouterFoldedBf16, "gemma4_router_folded_bf16"},
    {Variant::kGemma4EmbedScaleNotBf16, "gemma4_embed_scale_not_bf16"},
    {Variant::kGemma4AttentionSoftmaxBf16, "gemma4_attention_softmax_bf16"},
    {Variant::kGemma4RmsNormBf16, "gemma4_rmsnorm_bf16"},
    {Variant::kGemma4ResidualFp32RoundedLate, "gemma4_residual_fp32_rounded_late"},
    {Variant::kGemma4RouterBf16, "gemma4_router_bf16"},
}};

constexpr bool every_value_bound_in_enum_order() {
  // A value left out is value-initialised to {Variant(0), ""}, so it fails here too.
  for (size_t i = 0; i < kRegistryNames.size(); ++i)
    if (static_cast<size_t>(kRegistryNames[i].first) != i || kRegistryNames[i].second.empty()) return false;
  return true;
}
static_assert(every_value_bound_in_enum_order(),
              "kRegistryNames must bind every Variant, in enum order, to the name of its known_bugs.toml entry");

std::optional<Variant> variant_named(std::string_view name) {
  for (const auto& [variant, bound] : kRegistryNames)
    if (bound == name) return variant;
  return std::nullopt;
}

bool blank(std::string_view s) { return s.find_first_not_of(" \t\r\n") == std::string_view::npos; }

// Reads the fields of one table of an entry ([[bug]], its first_failure or [bug.fixture]); every
// problem is one line naming the file and line, the entry and the field.
class Fields {
 public:
  Fields(std::string_view source, std::string entry, const toml::table& table, std::string prefix = "")
      : source_(source), entry_(std::move(entry)), table_(table), prefix_(std::move(prefix)) {}

  [[noreturn]] void fail(const toml::node& at, std::string_view what) const {
    throw Error(fmt::format("[{}:{}] {}: {}", source_, at.source().begin.line, entry_, what));
  }
  std::string field(std::string_view key) const { return fmt::format("field \"{}{}\"", prefix_, key); }

  const toml::node& need(std::string_view key) const {
    const toml::node* node = table_.get(key);
    if (!node) fail(table_, field(key) + " is missing");
    return *node;
  }
  std::string text(std::string_view key) const {
    const toml::node& node = need(key);
    const toml::value<std::string>* value = node.as_string();
    if (!value) fail(node, field(key) + " must be a string");
    if (blank(value->get())) fail(node, field(key) + " must not be empty");
    return value->get();
  }
  std::string one_of(std::string_view key, std::initializer_list<std::string_view> allowed) const {
    std::string value = text(key);
    if (std::find(allowed.begin(), allowed.end(), value) == allowed.end())
      fail(need(key),
           fmt::format("{} must be one of \"{}\", got \"{}\"", field(key), fmt::join(allowed, "\", \""), value));
    return value;
  }
  int64_t integer(std::string_view key, int64_t at_least) const {
    const toml::node& node = need(key);
    const toml::value<int64_t>* value = node.as_integer();
    if (!value) fail(node, field(key) + " must be an integer");
    if (value->get() < at_least)
      fail(node, fmt::format("{} must be at least {}, got {}", field(key), at_least, value->get()));
    return value->get();
  }
  Fields table(std::string_view key) const {
    const toml::node& node = need(key);
    const toml::table* sub = node.as_table();
    if (!sub) fail(node, field(key) + " must be a table");
    return Fields(source_, entry_, *sub, fmt::format("{}{}.", prefix_, key));
  }
  // Unknown keys are refused: a misspelt field must not pass as a missing optional one.
  void only(std::initializer_list<std::string_view> known) const {
    for (const auto& [key, node] : table_)
      if (std::find(known.begin(), known.end(), key.str()) == known.end())
        fail(node, fmt::format("unknown {} (known: {})", field(key.str()), fmt::join(known, ", ")));
  }

 private:
  std::string_view source_;
  std::string entry_;
  const toml::table& table_;
  std::string prefix_;
};

VariantInfo parse_entry(const Fields& bug, Variant variant, std::string name) {
  bug.only({"name", "family", "title", "lives_in", "source", "story", "first_failure", "lives_at", "fixture"});
  VariantInfo v;
  v.variant = variant;
  v.name = std::move(name);
  v.family = bug.one_of("family", {"olmoe", "gemma4", "any"});
  v.title = bug.text("title");
  v.lives_in = bug.text("lives_in");
  v.source = bug.text("source");
  v.story = bug.text("story");
  const Fields first = bug.table("first_failure");
  first.only({"isolated", "chained"});
  v.first_failure_isolated = first.text("isolated");
  v.first_failure_chained = first.text("chained");
  v.lives_at = bug.text("lives_at");
  const Fields fixture = bug.table("fixture");
  fixture.only({"file", "config", "seed", "batch", "seq_len", "dtype"});
  v.fixture.file = fixture.text("file");
  if (!v.fixture.file.ends_with(".h5"))
    fixture.fail(fixture.need("file"), fixture.field("file") + " must name an .h5 file");
  v.fixture.config = fixture.text("config");
  v.fixture.seed = fixture.integer("seed", 0);
  v.fixture.batch = fixture.integer("batch", 1);
  v.fixture.seq_len = fixture.integer("seq_len", 2);  // a logprob needs a previous token
  v.fixture.dtype = fixture.one_of("dtype", {"float32", "bfloat16"});
  return v;
}

const std::vector<VariantInfo>& registry() {
  static const std::vector<VariantInfo> variants =
      parse_known_bugs(kKnownBugsToml, "references/models/known_bugs.toml");
  return variants;
}

}  // namespace

std::string_view known_bugs_toml() { return kKnownBugsToml; }

std::vector<VariantInfo> parse_known_bugs(std::string_view toml_text, std::string_view source) {
  toml::table root;
  try {
    root = toml::parse(toml_text, source);
  } catch (const toml::parse_error& e) {
    throw Error(fmt::format("[{}:{}] {}", source, e.source().begin.line, e.description()));
  }
  for (const auto& [key, node] : root)
    if (key.str() != "bug")
      throw Error(fmt::format("[{}:{}] unknown top-level key \"{}\" (only [[bug]] tables)", source,
                              node.source().begin.line, key.str()));
  const toml::array* bugs = root["bug"].as_array();
  if (!bugs || bugs->empty()) throw Error(fmt::format("[{}] no [[bug]] entries", source));

  std::array<std::optional<VariantInfo>, kVariantCount> by_variant;
  std::array<int64_t, kVariantCount> line_of{};
  for (size_t i = 0; i < bugs->size(); ++i) {
    const toml::node& node = *bugs->get(i);
    const toml::table* table = node.as_table();
    if (!table)
      throw Error(fmt::format("[{}:{}] bug #{}: expected a [[bug]] table", source, node.source().begin.line, i + 1));
    const Fields unnamed(source, fmt::format("bug #{}", i + 1), *table);
    std::string name = unnamed.text("name");
    const Fields bug(source, fmt::format("bug \"{}\"", name), *table);
    const std::optional<Variant> variant = variant_named(name);
    if (!variant)
      bug.fail(bug.need("name"), "no enum value is bound to this name (references/models/variants.{h,cpp}: "
                                 "add the Variant and its line in kRegistryNames)");
    const size_t index = static_cast<size_t>(*variant);
    const int64_t line = table->source().begin.line;
    if (by_variant[index])
      bug.fail(bug.need("name"), fmt::format("the name is used twice (first at line {})", line_of[index]));
    by_variant[index] = parse_entry(bug, *variant, std::move(name));
    line_of[index] = line;
  }
  std::vector<VariantInfo> out;
  for (size_t i = 0; i < kVariantCount; ++i) {
    if (!by_variant[i])
      throw Error(fmt::format("[{}] no [[bug]] entry named \"{}\" (the registry entry of enum value {})", source,
                              kRegistryNames[i].second, i));
    out.push_back(std::move(*by_variant[i]));
  }
  return out;
}

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
