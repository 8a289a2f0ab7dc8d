#include "diagnose_report.h"

#include <fmt/format.h>

#include "report_util.h"

namespace parity::reports {

namespace {

using harness::CheckReport;
using harness::Diagnosis;
using harness::HookResult;
using harness::VariantTrial;
using harness::Verdict;

std::string failure_line(const HookResult& h) { return fmt::format("{} ({})", h.hook, h.message); }

std::string first_failure_of(const VariantTrial& t) {
  if (const HookResult* h = t.report.first_failure()) return failure_line(*h);
  if (!t.report.problems.empty()) return t.report.problems.front();
  return "-";
}

// `text` broken into lines of at most `width` characters: the first starts with `first`, the others
// with as many spaces.
std::string wrap(const std::string& text, const std::string& first, size_t width = 100) {
  const std::string indent(first.size(), ' ');
  std::string out, line;
  auto flush = [&] {
    out += (out.empty() ? first : indent) + line + "\n";
    line.clear();
  };
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(' ', start);
    if (end == std::string::npos) end = text.size();
    const std::string word = text.substr(start, end - start);
    if (!line.empty() && indent.size() + line.size() + 1 + word.size() > width) flush();
    line += (line.empty() ? "" : " ") + word;
    start = end + 1;
  }
  if (!line.empty()) flush();
  return out;
}

// Variants other than the best one that also pass every hook (an ambiguous diagnosis).
std::vector<std::string> also_matching(const Diagnosis& d) {
  std::vector<std::string> out;
  if (d.verdict != Verdict::kMatchesVariant) return out;
  for (const VariantTrial& t : d.ranking)
    if (&t != &d.best() && t.variant && t.changes_model && t.passed()) out.push_back(t.name());
  return out;
}

std::string verdict_text(const Diagnosis& d) {
  const VariantTrial& hf = d.hf();
  if (d.verdict == Verdict::kMatchesHf) return "verdict: matches HF (every hook within its isolated budget)\n";
  const std::string evidence =
      fmt::format("HF's math fails {} hook(s), first at {}", hf.failed, first_failure_of(hf));
  if (d.verdict == Verdict::kMatchesVariant) {
    const VariantInfo& v = *d.best().variant;
    std::string out = fmt::format("verdict: matches variant {}: {}\n  lives in: {}\n", v.name, v.title, v.lives_in);
    out += wrap(std::string(v.story), "  ");
    out += wrap(evidence + "; under this variant every hook passes.", "  evidence: ");
    for (const std::string& other : also_matching(d)) out += fmt::format("  also matches: {}\n", other);
    return out;
  }
  const HookResult* first = d.first_seen();
  std::string out = fmt::format("verdict: unknown deviation, first seen at {}\n",
                                first ? failure_line(*first) : first_failure_of(hf));
  out += wrap(evidence + ". No known variant reproduces the target.", "  evidence: ");
  for (const VariantTrial& t : d.ranking) {  // the best-ranked variant, if it explains part of the deviation
    if (!t.variant || !t.changes_model) continue;
    if (t.failed < hf.failed)
      out += wrap(fmt::format("closest known variant: {} (fails {} hook(s), first at {})", t.name(), t.failed,
                              first_failure_of(t)),
                  "  ");
    break;
  }
  return out;
}

nlohmann::json failure_json(const VariantTrial& t) {
  if (const HookResult* h = t.report.first_failure())
    return {{"hook", h->hook}, {"message", h->message}, {"measured", h->measured ? number(*h->measured) : nlohmann::json()},
            {"limit", h->limit ? nlohmann::json(h->limit->str()) : nlohmann::json()}};
  if (!t.report.problems.empty()) return {{"hook", nullptr}, {"message", t.report.problems.front()}};
  return nullptr;
}

}  // namespace

std::string diagnose_text(const Diagnosis& d, const std::optional<std::string>& expected) {
  const CheckReport& hf = d.hf().report;
  std::string out = fmt::format("parity diagnose {}  ({}: isolated replay under HF's math and {} variant(s), precision {}, budget {})\n",
                                d.fixture, d.family, d.ranking.size() - 1, precision_name(hf.precision), hf.budget_source);
  size_t width = 7;
  for (const VariantTrial& t : d.ranking) width = std::max(width, t.name().size());
  out += fmt::format("{:>4}  {:<{}}  {:>6}  {:>7}  {}\n", "rank", "variant", width, "failed", "excess", "first failure");
  for (size_t i = 0; i < d.ranking.size(); ++i) {
    const VariantTrial& t = d.ranking[i];
    const std::string first = t.changes_model ? first_failure_of(t) : "(no effect on this model)";
    out += fmt::format("{:>4}  {:<{}}  {:>6}  {:>7.2f}  {}\n", i + 1, t.name(), width, t.failed, t.excess, first);
  }
  out += verdict_text(d);
  if (expected)
    out += fmt::format("expect: {} -> {}\n", *expected, *expected == d.name() ? "met" : "NOT met");
  return out;
}

nlohmann::json diagnose_json(const Diagnosis& d, const std::optional<std::string>& expected) {
  const CheckReport& hf = d.hf().report;
  nlohmann::json out = {{"schema", "parity-diagnose/1"},
                        {"fixture", d.fixture},
                        {"family", d.family},
                        {"mode", "isolated"},
                        {"precision", precision_name(hf.precision)},
                        {"budget", hf.budget_source},
                        {"verdict", harness::verdict_name(d.verdict)},
                        {"diagnosis", d.name()}};
  const VariantInfo* v = d.verdict == Verdict::kMatchesVariant ? d.best().variant : nullptr;
  out["variant"] = v ? nlohmann::json(v->name) : nlohmann::json();
  out["title"] = v ? nlohmann::json(v->title) : nlohmann::json();
  out["lives_in"] = v ? nlohmann::json(v->lives_in) : nlohmann::json();
  out["explanation"] = v ? nlohmann::json(v->story) : nlohmann::json();
  out["also_matching"] = also_matching(d);
  out["first_seen"] = failure_json(d.hf());
  out["expected"] = expected ? nlohmann::json(*expected) : nlohmann::json();
  out["expected_met"] = expected ? nlohmann::json(*expected == d.name()) : nlohmann::json();
  out["ranking"] = nlohmann::json::array();
  for (size_t i = 0; i < d.ranking.size(); ++i) {
    const VariantTrial& t = d.ranking[i];
    out["ranking"].push_back({{"rank", i + 1},
                              {"variant", t.name()},
                              {"title", t.variant ? nlohmann::json(t.variant->title) : nlohmann::json("HF's math")},
                              {"changes_model", t.changes_model},
                              {"passed", t.passed()},
                              {"failed", t.failed},
                              {"excess", number(t.excess)},
                              {"first_failure", failure_json(t)}});
  }
  return out;
}

}  // namespace parity::reports
