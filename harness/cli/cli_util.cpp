#include "cli/cli_util.h"

#include <optional>

#include <fmt/format.h>

#include "html_report.h"
#include "gate/json_difference.h"
#include "models/model.h"
#include "report_util.h"

namespace parity::harness {

// The reference follows the fixture's config; a checkpoint of another model must not slip through
// on coincidentally equal shapes (e.g. another rms_norm_eps or top-k). Both configs are compared
// as resolved by the reference, so a config.json in another layout (Gemma-4's global_head_dim vs
// per_layer_config, the multimodal wrapper's text_config, OLMoE's top-level rope_theta) that
// describes the same model is accepted.
void check_checkpoint_config(const Fixture& fixture, const Checkpoint& checkpoint) {
  if (!checkpoint.has_config()) return;
  const std::string where = fmt::format("--weights {}", checkpoint.dir().string());
  nlohmann::ordered_json theirs;
  try {
    theirs = resolved_config(checkpoint.config());
  } catch (const InputError&) {
    throw;
  } catch (const Error& e) {
    throw InputError(fmt::format("{}: config.json: {}", where, e.what()));
  }
  // Keys only the checkpoint's config has do not matter: the reference reads the fixture's.
  nlohmann::ordered_json ours = resolved_config(fixture.config()), theirs_known;
  for (const auto& [key, value] : ours.items()) theirs_known[key] = theirs.contains(key) ? theirs.at(key) : nullptr;
  if (const std::optional<JsonDifference> d = first_json_difference("", ours, theirs_known))
    throw InputError(fmt::format("{}: config.json has {} = {}, the fixture's config has {}", where, d->path,
                                 d->theirs.dump(), d->ours.dump()));
}


std::unique_ptr<std::ofstream> open_report(const std::string& path, const char* flag) {
  if (path.empty()) return nullptr;
  auto out = std::make_unique<std::ofstream>(path, std::ios::binary | std::ios::trunc);
  if (!*out) throw UsageError(fmt::format("{} {}: cannot open the file for writing", flag, path));
  return out;
}

void write_report(std::ofstream* out, const std::string& path, const std::string& text) {
  if (!out) return;
  *out << text;
  out->close();
  if (!*out) throw InputError(fmt::format("cannot write {}", path));
}

ReportFiles::ReportFiles(std::string json, std::string junit, std::string html)
    : json_path_(std::move(json)), junit_path_(std::move(junit)), html_path_(std::move(html)) {
  json_ = open_report(json_path_, "--json");
  junit_ = open_report(junit_path_, "--junit");
  html_ = open_report(html_path_, "--html");
}

void ReportFiles::write(const Outcome& outcome) {
  write_report(json_.get(), json_path_, outcome.json.dump(2) + "\n");
  write_report(junit_.get(), junit_path_, reports::junit_document(outcome.junit_suites));
  if (html_) write_report(html_.get(), html_path_, reports::html_report(outcome.json, html_path_));
}

int finish(ReportFiles& files, const Outcome& outcome) {
  fmt::print("{}", outcome.text);
  files.write(outcome);
  return outcome.passed ? 0 : 1;
}

std::optional<BaselineReport> compare_baseline(const std::optional<std::filesystem::path>& baseline,
                                               const std::string& kind, const std::vector<MetricValue>& values,
                                               const BandBudget& bands) {
  if (!baseline) return std::nullopt;
  return compare_to_baseline(read_baseline(*baseline), kind, values, bands);
}

void write_baseline(const std::string& path, bool gate_passed, const std::string& kind,
                    const std::string& accepted_from, const std::vector<MetricValue>& values) {
  if (path.empty()) return;
  if (!gate_passed) {
    fmt::print(stderr, "parity: baseline {} not written: the run failed its gate, and a baseline is an accepted run\n", path);
    return;
  }
  std::unique_ptr<std::ofstream> out = open_report(path, "--write-baseline");
  write_report(out.get(), path, baseline_json_text(kind, accepted_from, values));
}

}  // namespace parity::harness
