// The HTML page of a `parity check` result (its JSON, docs/cli.md "JSON report").
#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "hook_key.h"
#include "html_charts.h"
#include "html_page.h"
#include "html_report.h"
#include "report_util.h"

namespace parity::reports::html {

namespace {

using nlohmann::json;

// The layer a hook belongs to and its name inside the layer: "model.layers.3.mlp.experts" ->
// (3, "mlp.experts"), "model.layers.3@in1" -> (3, "@in1"), "model.layers.3" -> (3, "(layer)"), by
// the one hook-key parser (references/hook_key.h), so any text prefix is allowed.
std::optional<std::pair<int64_t, std::string>> layer_of(const std::string& hook) {
  const HookKey key = parse_hook_key(hook);
  if (key.layer < 0) return std::nullopt;
  return std::make_pair(key.layer, key.in_layer);
}

// How much of its budget a hook used: 1 = exactly at the limit. Cosine is a lower bound on a value
// near 1, so its slack 1 − cosine is what is used up.
double budget_fraction(const json& h) {
  const json& budget = h.at("budget");
  if (budget.is_null() || !h.at("measured").is_number()) return NAN;
  const double measured = h["measured"].get<double>(), limit = budget.at("limit").get<double>();
  if (budget.at("bound") == "min") {
    const double slack = 1 - limit;
    return slack <= 0 ? (measured >= limit ? 0 : INFINITY) : std::max(0.0, 1 - measured) / slack;
  }
  if (limit == 0) return measured == 0 ? 0 : INFINITY;
  return measured / limit;
}

// The tightest limit of two significant digits the measured value would have passed.
std::string smallest_passing(const json& h) {
  const json& budget = h.at("budget");
  if (budget.is_null() || !h.at("measured").is_number()) return "";
  const double measured = h["measured"].get<double>();
  const bool lower_bound = budget.at("bound") == "min";
  const double x = lower_bound ? 1 - measured : measured;  // the quantity to round up
  double up = 0;
  if (x > 0) {
    const double step = std::pow(10.0, std::floor(std::log10(x)) - 1);
    up = std::ceil(x / step * (1 - 1e-12)) * step;
  }
  const std::string metric = budget.at("metric").get<std::string>();
  return lower_bound ? fmt::format("{} &gt;= {:.12g}", esc(metric), 1 - up) : fmt::format("{} &lt;= {:.2g}", esc(metric), up);
}

// "rel_l2 <= 1e-05" as plain text (for SVG titles, which esc() once); budget_text() is its HTML.
std::string budget_plain(const json& h) {
  const json& b = h.at("budget");
  if (b.is_null()) return "";
  if (b.at("metric") == "floor_ratio") {  // rel_l2 against the noise floor (docs/budgets.md)
    const json& min = b.value("min_rel_l2", json());
    return min.is_number() && min.get<double>() > 0
               ? fmt::format("rel_l2 <= max({} x floor, {})", num(b.at("limit")), num(min))
               : fmt::format("rel_l2 <= {} x floor", num(b.at("limit")));
  }
  return fmt::format("{} {} {}", b.at("metric").get<std::string>(), b.at("bound") == "min" ? ">=" : "<=", num(b.at("limit")));
}

std::string budget_text(const json& h) { return esc(budget_plain(h)); }

std::string coordinate(const json& at) {
  if (!at.is_array()) return "";
  std::string out = "[";
  for (size_t i = 0; i < at.size(); ++i) out += (i ? "," : "") + esc(at[i]);
  return out + "]";
}

// The noise floor beside rel_l2: "9.7e-05 (x1.1)"; empty where the result has none (a compare, or
// a result written before floors existed).
std::string floor_cell(const json& h) {
  const json floor = h.value("floor", json());
  if (!floor.is_object() || !floor.value("rel_l2", json()).is_number()) return "<td class=\"num\" data-v=\"NaN\"></td>";
  const json ratio = h.value("floor_ratio", json());
  return fmt::format("<td class=\"num\" data-v=\"{}\">{}{}</td>", sort_key(floor.at("rel_l2")), num(floor.at("rel_l2")),
                     ratio.is_number() ? fmt::format(" (x{:.3g})", ratio.get<double>()) : std::string());
}

std::string fraction_cell(double f) {
  if (std::isnan(f)) return "<td class=\"num\" data-v=\"NaN\"></td>";
  const double width = std::isinf(f) ? 60 : std::clamp(f, 0.0, 1.0) * 60;
  return fmt::format("<td class=\"num\" data-v=\"{:.17g}\"><span class=\"bar{}\" style=\"width:{:.0f}px\"></span>{}</td>",
                     std::isinf(f) ? 1e308 : f, f > 1 ? " over" : "", width,
                     std::isinf(f) ? "over" : fmt::format("{:.3g}%", f * 100));
}

// The two sides a result compares, from its first run: the reference against HF (check), or a
// target dump against a base dump (parity compare). Results written before "sides" existed are checks.
struct Sides {
  std::string ref = "reference", hf = "HF";
  std::string ref_key = "ref", hf_key = "hf";  // the hooks' field prefixes: compare's are "target", "base"
  std::string target;  // parity compare: the target's path
};

Sides sides_of(const json& result) {
  Sides s;
  const json& runs = result.at("runs");
  if (runs.empty()) return s;
  if (runs[0].contains("sides")) s.ref = runs[0]["sides"].at("ref"), s.hf = runs[0]["sides"].at("hf");
  if (runs[0].contains("target") && runs[0]["target"].is_string()) s.target = runs[0]["target"];
  const std::string mode = runs[0].value("mode", "");
  if (mode == "compare" || mode == "grad.compare") s.ref_key = "target", s.hf_key = "base";
  return s;
}

// "reference" -> "ref", "HF" -> "hf"; compare's "target", "base" as they are.
std::string short_side(const std::string& side) { return side == "reference" ? "ref" : side == "HF" ? "hf" : side; }

// parity compare: a mixed-dtype pair at the lower precision, and the three-way verdict, as text.
std::string compare_note(const json& h) {
  std::string out;
  if (h.contains("lower_precision") && !h["lower_precision"].is_null())
    out += fmt::format(" · {} rounded: rel_l2 {} (floor {})", h["lower_precision"].at("dtype").get<std::string>(),
                       num(h["lower_precision"].at("rel_l2")), num(h["lower_precision"].at("floor")));
  if (h.contains("reference") && !h["reference"].is_null() && h.value("status", "") != "pass")
    out += " · reference: " + h["reference"].at("verdict").get<std::string>();
  if (h.contains("near_tie_tokens") && !h["near_tie_tokens"].empty())
    out += " · near-ties" + near_tie_tokens_text(h["near_tie_tokens"].get<std::vector<int64_t>>());
  if (h.contains("note") && h["note"].is_string()) out += " · " + h["note"].get<std::string>();
  return out;
}

std::string hook_row(const json& h, size_t index, bool first, const Sides& sides) {
  const std::string status = h.at("status").get<std::string>(), hook = h.at("hook").get<std::string>();
  // A float metric of a top-k index hook is not applicable (sorted last), not a NaN (sorted worst).
  const bool floats = h.at("kind") == "float";
  const auto key = [&](const json& v) { return floats ? sort_key(v) : std::string(); };
  const auto layer = layer_of(hook);
  std::string at;
  if (h.contains("max_abs_at") && !h["max_abs_at"].is_null())
    at = fmt::format("{} {} {} {} {}", coordinate(h["max_abs_at"]), esc(short_side(sides.ref)),
                     element(h.at(sides.ref_key + "_at_max_abs")), esc(short_side(sides.hf)),
                     element(h.at(sides.hf_key + "_at_max_abs")));
  else if (h.contains("first_difference"))
    at = esc(h["first_difference"]);
  const json rule = h.at("budget").is_null() ? json() : h["budget"].at("rule");
  return fmt::format(
      "<tr class=\"{0}{1}\" data-status=\"{0}\" data-mode=\"{2}\"{3}><td class=\"num\" data-v=\"{4}\">{4}</td>"
      "<td>{2}</td><td class=\"hook\">{5}</td><td class=\"num\" data-v=\"{6}\">{7}</td>"
      "<td class=\"status-{0}\">{0}</td><td class=\"num\" data-v=\"{8}\">{9}</td><td class=\"num\">{10}</td>{11}"
      "<td class=\"num\">{12}</td><td class=\"num\" data-v=\"{13}\">{14}</td>{22}<td class=\"num\" data-v=\"{15}\">{16}</td>"
      "<td class=\"mono\">{17}</td><td class=\"num\" data-v=\"{18}\">{19}</td><td class=\"small\">{20}</td><td>{21}</td></tr>\n",
      esc(status), first ? " first" : "", esc(h.at("mode")), first ? " id=\"first-divergence-row\"" : "", index + 1,
      esc(hook), layer ? layer->first : -1, layer ? std::to_string(layer->first) : "", sort_key(h.at("measured")),
      h.at("measured").is_null() ? "" : num(h["measured"]), budget_text(h), fraction_cell(budget_fraction(h)),
      smallest_passing(h), key(h.at("rel_l2")), !floats ? "" : num(h["rel_l2"]), key(h.at("max_abs")),
      !floats ? "" : num(h["max_abs"]), at, key(h.value("cosine", json())), !floats ? "" : num(h.value("cosine", json())),
      esc(rule), esc(h.at("message").get<std::string>() + compare_note(h)), floor_cell(h));
}

// The modes the report's hooks come from, in run order ("isolated", ..., "grad.chained").
std::vector<std::string> modes_of(const json& hooks) {
  std::vector<std::string> modes;
  for (const json& h : hooks)
    if (std::find(modes.begin(), modes.end(), h.at("mode").get<std::string>()) == modes.end())
      modes.push_back(h.at("mode"));
  return modes;
}

bool is_gradient_mode(const std::string& mode) { return mode.starts_with("grad."); }

std::string hook_table(const json& hooks, const json& first, const Sides& sides) {
  std::string out = "<h2 id=\"hooks\">Every hook</h2>\n";
  const std::string modes = select_filter("hook-table", "mode", "mode", modes_of(hooks));
  out += filter_controls("hook-table", select_filter("hook-table", "status", "status", {"pass", "fail", "skipped"}) + modes);
  // No colon in the label: table_head() would read what follows one as the column's sort type.
  const std::string at = fmt::format("max |Δ| at ({} vs {})", short_side(sides.ref), short_side(sides.hf));
  out += table_head("hook-table", {"#:num", "mode:text", "hook:text", "layer:num", "status:text", "measured:num",
                                   "budget", "% of budget:num", "smallest passing budget", "rel_l2:num", "noise floor (x ratio):num",
                                   "max_abs:num",
                                   at, "cosine:num", "budget rule", "message"});
  std::map<std::string, size_t> index_in_mode;
  for (const json& h : hooks) {
    const bool is_first = !first.is_null() && first.at("hook") == h.at("hook") && first.at("mode") == h.at("mode");
    out += hook_row(h, index_in_mode[h.at("mode").get<std::string>()]++, is_first, sides);
  }
  return out + table_end;
}

std::string worst_elements(const json& h, const Sides& sides) {
  if (!h.contains("worst") || h["worst"].empty()) return "";
  std::string out = fmt::format("<table class=\"worst\"><thead><tr><th>element</th><th>{}</th><th>{}</th><th>|{} − {}|</th>"
                                "</tr></thead><tbody>\n", esc(sides.ref), esc(sides.hf), esc(short_side(sides.ref)),
                                esc(short_side(sides.hf)));
  for (const json& w : h["worst"])
    out += fmt::format("<tr><td class=\"mono\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>"
                       "<td class=\"num\">{}</td></tr>\n",
                       coordinate(w.at("at")), element(w.at(sides.ref_key)), element(w.at(sides.hf_key)),
                       num(w.at("abs_diff")));
  return out + "</tbody></table>\n";
}

const json* find_hook(const json& hooks, const json& mode, const json& hook) {
  for (const json& h : hooks)
    if (h.at("mode") == mode && h.at("hook") == hook) return &h;
  return nullptr;
}

// The first divergence (the first failing hook in forward order) or, in a passing run, the hook
// closest to its budget: where to start reading either way.
// parity compare, in the first-divergence panel: the mixed-dtype metrics and the three-way verdict.
std::string compare_details(const json& h) {
  std::string out;
  if (h.contains("lower_precision") && !h["lower_precision"].is_null()) {
    const json& lp = h["lower_precision"];
    out += fmt::format("<p class=\"meta\">Mixed dtypes: both sides rounded to {} differ by rel_l2 <b>{}</b>; rounding the "
                       "{} alone costs {} (the floor).</p>", esc(lp.at("dtype")), num(lp.at("rel_l2")),
                       esc(lp.at("higher_side")), num(lp.at("floor")));
  }
  if (h.contains("reference") && !h["reference"].is_null() && h.value("status", "") != "pass")
    out += fmt::format("<p class=\"three-way\"><b>Against the C++ reference</b> (replayed on each side's own inputs): "
                       "{}</p>", esc(h["reference"].at("verdict")));
  return out;
}

std::string divergence_panel(const json& result, const Sides& sides) {
  const json& hooks = result.at("hooks");
  const json& first = result.at("first_failure");
  if (!first.is_null()) {
    std::string out = "<h2 id=\"first-divergence\">First divergence</h2>\n<div class=\"panel alert\">";
    const json* h = first.at("hook").is_null() ? nullptr : find_hook(hooks, first.at("mode"), first.at("hook"));
    out += fmt::format("<p><b>{}</b> ({})</p><p>{}</p>", first.at("hook").is_null() ? "no hook: the run itself"
                                                                                     : esc(first.at("hook")),
                       esc(first.at("mode")), esc(first.at("message")));
    if (h) {
      const json floor = h->value("floor", json());
      out += fmt::format("<p class=\"meta\">measured <b>{}</b>, budget {} ({}); rel_l2 {}{}, max_abs {}</p>",
                         num(h->at("measured")), budget_text(*h), h->at("budget").is_null() ? "" : esc(h->at("budget").at("rule")),
                         num(h->at("rel_l2")),
                         floor.is_object() ? fmt::format(" (noise floor {}, ratio {})", num(floor.value("rel_l2", json())),
                                                         num(h->value("floor_ratio", json())))
                                           : std::string(),
                         num(h->at("max_abs")));
      out += compare_details(*h);
      out += worst_elements(*h, sides);
    }
    return out + "</div>\n";
  }
  const json* closest = nullptr;
  double most = -1;
  for (const json& h : hooks) {
    const double f = budget_fraction(h);
    if (!std::isnan(f) && f > most) most = f, closest = &h;
  }
  std::string out = "<h2 id=\"first-divergence\">First divergence</h2>\n<div class=\"panel\"><p>No hook is outside its budget.</p>";
  if (closest)
    out += fmt::format("<p>Closest to its budget: <b>{}</b> ({}), {:.3g}% of {}: measured {}.</p>{}", esc(closest->at("hook")),
                       esc(closest->at("mode")), most * 100, budget_text(*closest), num(closest->at("measured")),
                       compare_details(*closest) + worst_elements(*closest, sides));
  return out + "</div>\n";
}

// gradient_mode "": the forward modes' module outputs in forward order; a gradient mode: its rows
// (input gradients among them) in its own backward order.
std::string drift_section(const json& hooks, const std::string& gradient_mode) {
  const bool gradients = !gradient_mode.empty();
  std::map<std::string, int> x_of;
  std::vector<std::string> order;
  std::map<std::string, ChartSeries> series;
  std::vector<std::string> modes;
  for (const json& h : hooks) {
    const std::string hook = h.at("hook"), mode = h.at("mode");
    if (gradients ? mode != gradient_mode : is_gradient_mode(mode)) continue;
    if (h.at("kind") != "float" || (!gradients && is_input_key(hook)) || h.at("status") == "skipped") continue;
    if (!x_of.count(hook)) x_of[hook] = static_cast<int>(order.size()), order.push_back(hook);
    if (!series.count(mode)) series[mode].name = mode, modes.push_back(mode);
    const json& rel = h.at("rel_l2");
    ChartSeries& s = series[mode];
    s.points.push_back({x_of[hook], rel.is_number() ? std::optional<double>(rel.get<double>()) : std::nullopt,
                        h.at("status") == "fail", fmt::format("{} {}: rel_l2 {}", mode, hook, num(rel))});
    const json& b = h.at("budget");
    if (!b.is_null() && b.at("metric") == "rel_l2") s.budget.push_back({x_of[hook], b.at("limit").get<double>()});
    // A floor_ratio budget is a bound per hook: max(k x floor, min_rel_l2).
    const json floor = h.value("floor", json());
    if (!b.is_null() && b.at("metric") == "floor_ratio" && floor.is_object() && floor.value("rel_l2", json()).is_number())
      s.budget.push_back({x_of[hook], std::max(b.at("limit").get<double>() * floor.at("rel_l2").get<double>(),
                                               b.value("min_rel_l2", json(0.0)).get<double>())});
  }
  if (order.empty()) return "";
  std::vector<LayerMark> layers;
  int last = -1;
  for (size_t i = 0; i < order.size(); ++i)
    if (const auto l = layer_of(order[i]); l && l->first != last)
      layers.push_back({static_cast<int>(i), fmt::format("L{}", l->first)}), last = l->first;
  std::vector<ChartSeries> ordered;
  for (const std::string& m : modes) ordered.push_back(series[m]);
  const std::string title =
      gradients ? fmt::format("<h2 id=\"drift-{0}\">Gradients, {0}: rel_l2 in backward order</h2>\n<p class=\"small\">Each "
                              "gradient row (a hook key: the gradient of that tensor; a parameter's name; the loss) from "
                              "the head back to the embeddings: the first failure is the first divergence of the "
                              "backward.</p>\n", esc(gradient_mode))
                : "<h2 id=\"drift\">Drift: rel_l2 against depth</h2>\n";
  return title + drift_chart(ordered, layers, static_cast<int>(order.size()),
                             gradients ? "drift-chart-" + gradient_mode : std::string("drift-chart"));
}

std::string heatmap_section(const json& hooks) {
  std::map<std::string, std::vector<const json*>> by_mode;
  std::vector<std::string> modes;
  for (const json& h : hooks) {
    const std::string mode = h.at("mode");
    if (!by_mode.count(mode)) modes.push_back(mode);
    by_mode[mode].push_back(&h);
  }
  std::string out;
  for (const std::string& mode : modes) {
    std::map<int, size_t> rows;
    std::map<std::string, size_t> columns;
    std::vector<std::string> column_names;
    std::vector<HeatCell> cells;
    for (const json* h : by_mode[mode]) {
      const std::string hook = h->at("hook");
      const auto layer = layer_of(hook);
      if (!layer || (is_input_key(hook) && !is_gradient_mode(mode))) continue;
      rows.emplace(layer->first, 0);
      if (!columns.count(layer->second)) columns[layer->second] = column_names.size(), column_names.push_back(layer->second);
    }
    if (rows.empty()) continue;
    std::vector<std::string> row_names;
    for (auto& [layer, index] : rows) index = row_names.size(), row_names.push_back(fmt::format("layer {}", layer));
    for (const json* h : by_mode[mode]) {
      const std::string hook = h->at("hook");
      const auto layer = layer_of(hook);
      if (!layer || (is_input_key(hook) && !is_gradient_mode(mode))) continue;
      const double f = budget_fraction(*h);
      cells.push_back({rows[layer->first], columns[layer->second], f, h->at("status"),
                       fmt::format("{} {}: {}, {} of {}", mode, hook, h->at("status").get<std::string>(),
                                   std::isnan(f) ? "n/a" : fmt::format("{:.3g}%", f * 100), budget_plain(*h))});
    }
    out += fmt::format("<h3>{}</h3>\n", esc(mode)) + heatmap(mode, row_names, column_names, cells);
  }
  if (out.empty()) return "";
  return "<h2 id=\"heatmap\">Layer × sub-module</h2>\n<p class=\"small\">Colour: fraction of the budget used, blue "
         "(≤ 1e-6 of it) to red (at it); red outline: failed; grey: skipped. Forward runs: module outputs only (inputs are in the "
         "table).</p>\n" + out;
}

std::string runs_meta(const json& result) {
  std::string out;
  for (const json& run : result.at("runs")) {
    out += fmt::format("<p class=\"meta\"><b>{}</b> {}: precision {}, budget {} — {} passed, {} failed, {} skipped</p>\n",
                       esc(run.at("mode")), esc(run.at("verdict")), esc(run.at("precision")), esc(run.at("budget")),
                       esc(run.at("passed")), esc(run.at("failed")), esc(run.at("skipped")));
    for (const json& p : run.at("problems")) out += fmt::format("<p class=\"status-fail\">problem: {}</p>\n", esc(p));
    if (run.contains("notes"))
      for (const json& n : run["notes"]) out += fmt::format("<p class=\"meta\">note: {}</p>\n", esc(n));
  }
  return out;
}

}  // namespace

std::string check_page(const json& result) {
  const json& runs = result.at("runs");
  const std::string fixture = runs.empty() ? "" : runs[0].at("fixture").get<std::string>();
  const std::string verdict = result.at("verdict");
  const json& first = result.at("first_failure");
  std::string detail = first.is_null() ? "every hook within its budget"
                                       : fmt::format("first failure: {} ({}): {}",
                                                     first.at("hook").is_null() ? "no hook" : first.at("hook").get<std::string>(),
                                                     first.at("mode").get<std::string>(), first.at("message").get<std::string>());
  if (!result.at("baseline").is_null() && result["baseline"].at("verdict") == "fail")
    detail += "; moved outside its baseline band (see Baseline)";
  // A bug-zoo case passes when its gate fails where expected: the banner says so first.
  if (result.contains("expect") && !result["expect"].is_null())
    detail = result["expect"].at("summary").get<std::string>() + "; gate: " + detail;
  const Sides sides = sides_of(result);
  const std::string title = sides.target.empty() ? fmt::format("parity check: {}", fixture)
                                                 : fmt::format("parity compare: {} ({}) vs {} ({})", fixture, sides.hf,
                                                               sides.target, sides.ref);
  std::string body = fmt::format("<h1>{}</h1>\n", esc(title));
  body += verdict_banner(verdict, verdict == "pass" ? "PASS" : "FAIL", detail);
  body += runs_meta(result);
  body += divergence_panel(result, sides);
  body += drift_section(result.at("hooks"), "");
  for (const std::string& mode : modes_of(result.at("hooks")))  // each its own backward order
    if (is_gradient_mode(mode)) body += drift_section(result.at("hooks"), mode);
  body += heatmap_section(result.at("hooks"));
  body += baseline_panel(result.at("baseline"));
  body += hook_table(result.at("hooks"), first, sides);
  return page(sides.target.empty() ? fmt::format("parity check {} — {}", fixture, verdict)
                                   : fmt::format("parity compare {} vs {} — {}", fixture, sides.target, verdict),
              body);
}

}  // namespace parity::reports::html
