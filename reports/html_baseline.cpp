// The run-vs-baseline panel every HTML result page carries (harness/baseline.h).
#include <algorithm>

#include <fmt/format.h>

#include "html_page.h"
#include "html_report.h"

namespace parity::reports::html {

namespace {

using nlohmann::json;

std::string entry_row(const json& e) {
  const std::string drift = e.at("drift");
  std::string css = drift;
  std::replace(css.begin(), css.end(), ' ', '-');
  return fmt::format("<tr data-drift=\"{0}\"><td>{1}</td><td class=\"hook\">{2}</td><td class=\"mono\">{3}</td>"
                     "<td class=\"num\" data-v=\"{4}\">{5}</td><td class=\"num\" data-v=\"{6}\">{7}</td>"
                     "<td class=\"num\">[{8}, {9}]</td><td class=\"drift-{10}\">{0}</td><td class=\"small\">{11}</td></tr>\n",
                     esc(drift), esc(e.at("mode")), esc(e.at("hook")), esc(e.at("metric")), sort_key(e.at("value")),
                     num(e.at("value")), sort_key(e.at("baseline")), num(e.at("baseline")), num(e.at("low")),
                     num(e.at("high")), esc(css), esc(e.at("band_rule")));
}

}  // namespace

std::string baseline_panel(const json& baseline) {
  std::string out = "<h2 id=\"baseline\">Baseline</h2>\n";
  if (baseline.is_null())
    return out + "<div class=\"panel\" data-baseline=\"none\"><p>No baseline given (<code>--baseline FILE</code>, or "
                 "<code>baseline = \"...\"</code> in the case).</p></div>\n";
  const json& counts = baseline.at("counts");
  const std::string verdict = baseline.at("verdict");
  out += fmt::format("<div class=\"panel{}\" data-baseline=\"{}\"><p><b>{}</b> against {}: {} within their band, {} grew, "
                     "{} dropped, {} not finite, {} missing from this run, {} new.</p>",
                     verdict == "pass" ? "" : " alert", esc(verdict), verdict == "pass" ? "PASS" : "FAIL",
                     esc(baseline.at("source")), esc(counts.at("within")), esc(counts.at("grew")), esc(counts.at("dropped")),
                     esc(counts.at("not finite")), esc(counts.at("missing")), esc(counts.at("new")));
  for (const json& p : baseline.at("problems")) out += fmt::format("<p class=\"status-fail\">problem: {}</p>", esc(p));
  std::string outside, within;
  for (const json& e : baseline.at("entries")) (e.at("drift") == "within" ? within : outside) += entry_row(e);
  const auto head = [](const char* id) {
    return table_head(id, {"mode:text", "hook:text", "metric:text", "this run:num", "baseline:num", "band", "drift:text",
                           "band from"});
  };
  if (!outside.empty()) out += "<p>Outside the band (an error that drops is as suspicious as one that grows):</p>" +
                               head("baseline-outside") + outside + table_end;
  if (!within.empty())
    out += "<details><summary>metrics within their band</summary>" + head("baseline-within") + within +
           std::string(table_end) + "</details>\n";
  return out + "</div>\n";
}

}  // namespace parity::reports::html
