#include "hook_key.h"

#include <charconv>

namespace parity {

namespace {

constexpr std::string_view kOutputsPrefix = "/outputs/";
constexpr std::string_view kTextPrefixes[] = {"model.language_model.", "model."};

// The layer index after "layers." at `at`, and where it ends; parsed by hand (std::regex recurses
// per character, so a hostile long key could overflow the stack; std::stoi throws on huge numbers).
std::optional<std::pair<int64_t, size_t>> layer_at(std::string_view key, size_t at) {
  const char* digits = key.data() + at + 7;
  const char* end = key.data() + key.size();
  int64_t layer = -1;
  const auto [rest, ec] = std::from_chars(digits, end, layer);
  if (ec != std::errc() || rest == digits || layer < 0) return std::nullopt;
  if (rest != end && *rest != '.' && *rest != '@') return std::nullopt;
  return std::make_pair(layer, static_cast<size_t>(rest - key.data()));
}

void parse_slot(HookKey& h) {
  const std::string& s = h.slot;
  if (!s.starts_with("in")) return;
  const size_t digits_end = s.find_first_not_of("0123456789", 2);
  const std::string_view digits = std::string_view(s).substr(2, digits_end == std::string::npos ? std::string::npos
                                                                                                : digits_end - 2);
  const bool ends = digits_end == std::string::npos;
  if (!ends && s[digits_end] != '.') return;  // "index", "inner": a named slot, not an input
  int index = 0;
  if (!digits.empty() && std::from_chars(digits.data(), digits.data() + digits.size(), index).ec != std::errc())
    return;
  h.kind = HookKind::kInput;
  h.input_index = index;
  if (!ends) h.kwarg = s.substr(digits_end + 1);
}

}  // namespace

HookKey parse_hook_key(std::string_view key) {
  HookKey h;
  if (key.starts_with(kOutputsPrefix)) {
    h.kind = HookKind::kModelOutput;
    h.slot = key.substr(kOutputsPrefix.size());
    return h;
  }
  const size_t at = key.find('@');
  h.module = key.substr(0, at);
  if (at != std::string_view::npos) {
    h.slot = key.substr(at + 1);
    h.kind = HookKind::kSlot;
    parse_slot(h);
  }
  for (size_t pos = key.find("layers."); pos != std::string_view::npos && pos < h.module.size();
       pos = key.find("layers.", pos + 1)) {
    if (pos > 0 && key[pos - 1] != '.') continue;
    const auto found = layer_at(key, pos);
    if (!found) continue;
    h.layer = found->first;
    const size_t rest = found->second;
    h.in_layer = rest == key.size() ? "(layer)" : key[rest] == '.' ? key.substr(rest + 1) : key.substr(rest);
    break;
  }
  return h;
}

bool is_input_key(std::string_view key) { return parse_hook_key(key).kind == HookKind::kInput; }

bool is_model_output_key(std::string_view key) { return key.starts_with(kOutputsPrefix); }

bool is_module_key(std::string_view module, std::string_view key) {
  return key.starts_with(module) &&
         (key.size() == module.size() || key[module.size()] == '@' || key[module.size()] == '.');
}

int64_t decoder_layer_of(std::string_view key) { return parse_hook_key(key).layer; }

std::string_view text_prefix(std::string_view key) {
  for (std::string_view prefix : kTextPrefixes)
    if (key.starts_with(prefix)) return prefix;
  return {};
}

std::optional<std::string> last_hidden_state_alias(std::string_view module) {
  const std::string_view prefix = text_prefix(module);
  if (prefix.empty() || module.substr(prefix.size()) != "norm") return std::nullopt;
  return std::string(prefix.substr(0, prefix.size() - 1)) + "@last_hidden_state";
}

}  // namespace parity
