#include "logprobs/gate.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "gate/budget.h"
#include "gate/toml_file.h"
#include "errors.h"

namespace parity::harness {

namespace {

constexpr std::string_view kCaseKeys[] = {"run", "train", "rollout", "tokenizer", "baseline"};

[[noreturn]] void fail(const std::string& at, const std::string& what) { budget_error(at, what); }

double finite_number(const toml::node& node, const std::string& at, const std::string& key) {
  std::optional<double> v = node.value<double>();
  if (!v || !std::isfinite(*v)) fail(at, fmt::format("\"{}\" must be a finite number", key));
  return *v;
}

MetricBound parse_bound(const std::string& metric, const toml::node& node, const std::string& at) {
  const std::vector<std::string>& names = logprob_metric_names();
  if (std::find(names.begin(), names.end(), metric) == names.end())
    fail(at, fmt::format("unknown metric \"{}\" (metrics: {})", metric, fmt::join(names, ", ")));
  const toml::table* t = node.as_table();
  if (!t) fail(at, fmt::format("{} = {{ max = <limit> }} and/or {{ min = <limit> }}", metric));
  MetricBound bound{metric, std::nullopt, std::nullopt, at};
  for (const auto& [key, value] : *t) {
    if (key.str() == "max") bound.max = finite_number(value, at, "max");
    else if (key.str() == "min") bound.min = finite_number(value, at, "min");
    else fail(at, fmt::format("unknown key \"{}\" in the bound of {} (max, min)", key.str(), metric));
  }
  if (!bound.min && !bound.max) fail(at, fmt::format("the bound of {} names neither max nor min", metric));
  if (bound.min && bound.max && *bound.min > *bound.max) fail(at, fmt::format("{}: min > max", metric));
  return bound;
}

void parse_options(const toml::table& t, const std::string& source, LogprobOptions& o) {
  for (const auto& [key, node] : t) {
    const std::string at = where(source, node), k(key.str());
    if (k == "is_threshold") o.is_threshold = finite_number(node, at, k);
    else if (k == "veto_threshold") o.veto_threshold = finite_number(node, at, k);
    else if (k == "catastrophic_threshold") o.catastrophic_threshold = finite_number(node, at, k);
    else if (k == "catastrophic_top" || k == "context") {
      std::optional<int64_t> v = node.value_exact<int64_t>();
      if (!v || *v < 0) fail(at, fmt::format("\"{}\" must be an integer >= 0", k));
      (k == "context" ? o.context : o.catastrophic_top) = *v;
    } else {
      fail(at, fmt::format("unknown option \"{}\" (is_threshold, veto_threshold, catastrophic_threshold, "
                           "catastrophic_top, context)", k));
    }
  }
}

}  // namespace

bool MetricBound::allows(double value) const {
  if (std::isnan(value)) return false;
  return (!min || value >= *min) && (!max || value <= *max);
}

std::string MetricBound::str() const {
  if (min && max) return fmt::format("in [{:g}, {:g}]", *min, *max);
  return min ? fmt::format(">= {:g}", *min) : fmt::format("<= {:g}", *max);
}

LogprobBudget builtin_logprob_budget() {
  LogprobBudget b;
  b.source = "built-in logprob budget (slime's CI default)";
  b.bounds.push_back({"abs_diff_seq_mean", std::nullopt, 0.1, "built-in"});
  b.bands = builtin_logprob_bands();
  return b;
}

LogprobBudget parse_logprob_budget(const std::string& toml_text, const std::string& source, bool is_case) {
  return parse_logprob_budget(parse_budget_toml(toml_text, source), source, is_case);
}

LogprobBudget parse_logprob_budget(const toml::table& root, const std::string& source, bool is_case) {
  for (const auto& [key, node] : root) {
    const bool case_key = std::find(std::begin(kCaseKeys), std::end(kCaseKeys), key.str()) != std::end(kCaseKeys);
    if (case_key && !is_case)
      fail(where(source, node), fmt::format("is a case file (it names \"{}\"): use --case", key.str()));
    if (key.str() != "logprobs" && key.str() != "bands" && !case_key)
      fail(where(source, node), fmt::format("unknown key \"{}\"{}", key.str(),
                                            key.str() == "isolated" || key.str() == "chained"
                                                ? " (a hook budget section: use it with parity check)"
                                                : ""));
  }
  const toml::table* table = root["logprobs"].as_table();
  if (!table) fail(source, "has no [logprobs] table (e.g. abs_diff_seq_mean = { max = 0.02 })");
  // A [logprobs] table is the whole gate: its bounds replace the built-in one (which only stands in
  // when no budget is given); [bands] and [logprobs.options] are laid over the built-in ones.
  LogprobBudget b = builtin_logprob_budget();
  b.source = source;
  b.bounds.clear();
  for (const auto& [key, node] : *table) {
    if (key.str() == "options") {
      if (!node.is_table()) fail(where(source, node), "options must be a table ([logprobs.options])");
      parse_options(*node.as_table(), source, b.options);
      continue;
    }
    b.bounds.push_back(parse_bound(std::string(key.str()), node, where(source, node)));
  }
  if (b.bounds.empty()) fail(source, "[logprobs] gates no metric");
  b.bands = parse_bands(root, source, builtin_logprob_bands());
  // TOML tables carry no order: report bounds in the metrics' own order.
  const std::vector<std::string>& names = logprob_metric_names();
  const auto rank = [&](const MetricBound& x) { return std::find(names.begin(), names.end(), x.metric) - names.begin(); };
  std::sort(b.bounds.begin(), b.bounds.end(), [&](const MetricBound& x, const MetricBound& y) { return rank(x) < rank(y); });
  return b;
}

LogprobBudget load_logprob_budget(const std::filesystem::path& path) {
  return parse_logprob_budget(read_budget_file(path), path.string());
}

bool LogprobReport::passed() const {
  return problems.empty() && !verdicts.empty() &&
         std::all_of(verdicts.begin(), verdicts.end(), [](const MetricVerdict& v) { return v.passed; }) &&
         (!baseline || baseline->passed());
}

std::vector<MetricValue> baseline_values(const LogprobReport& report) {
  std::vector<MetricValue> values;
  for (const LogprobMetric& m : report.summary.metrics) values.push_back({"", "", m.name, m.value});
  return values;
}

LogprobReport gate_logprobs(const LogprobRun& run, const LogprobBudget& budget,
                            const std::optional<std::filesystem::path>& tokenizer) {
  LogprobReport report;
  report.source = run.source;
  report.train_source = run.train_source;
  report.rollout_source = run.rollout_source;
  report.budget_source = budget.source;
  report.options = budget.options;
  report.summary = compute_logprob_metrics(run, budget.options);
  for (const MetricBound& bound : budget.bounds) {
    const LogprobMetric* m = report.summary.find(bound.metric);
    const double value = m ? m->value : std::nan("");
    report.verdicts.push_back({bound.metric, value, bound, bound.allows(value)});
  }
  if (const LogprobSummary& s = report.summary; s.nonfinite_tokens > 0)
    report.problems.push_back(fmt::format("{} scored token(s) have a NaN or infinite logprob{}", s.nonfinite_tokens,
                                          s.nonfinite.empty() ? "" : fmt::format(" (first: sequence {}, position {})",
                                                                                 s.nonfinite[0].at.sequence,
                                                                                 s.nonfinite[0].at.position)));
  report.catastrophic = list_tokens(run, report.summary.catastrophic, budget.options.context);
  report.nonfinite = list_tokens(run, report.summary.nonfinite, budget.options.context);
  if (tokenizer) {
    std::vector<int64_t> ids = shown_ids(report.catastrophic);
    const std::vector<int64_t> more = shown_ids(report.nonfinite);
    ids.insert(ids.end(), more.begin(), more.end());
    // Every id of the run (tokens, and top-k alternatives of scored tokens) must exist in the
    // tokenizer, not only the shown ones: a run scored with another vocabulary is bad input.
    int64_t max_id = *std::max_element(run.input_ids.begin(), run.input_ids.end());
    for (const std::optional<TopKTable>* table : {&run.train_top_k, &run.rollout_top_k})
      for (size_t i = 0; *table && i < (*table)->ids.size(); ++i)  // rows of unscored tokens are ignored
        if (run.loss_mask[i / static_cast<size_t>((*table)->k)]) max_id = std::max(max_id, (*table)->ids[i]);
    report.texts = decode_tokens(*tokenizer, ids, max_id);
  }
  return report;
}

}  // namespace parity::harness
