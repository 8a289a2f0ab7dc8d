// The index page of a multi-case run (`parity check cases/ --out DIR`): one row per case, linking
// its reports. Rendered from the run's summary.json (docs/cli.md "Multi-case runs").
#include <cctype>

#include <fmt/format.h>

#include "html_page.h"
#include "html_report.h"

namespace parity::reports::html {

namespace {

using nlohmann::json;

// A report path from summary.json (relative to the index) as a link: "./" and every byte outside
// the URL's unreserved set percent-encoded, so "a#b.html" stays a file and "javascript:x" or
// "https://..." cannot become a scheme. An absolute path is not something the runner writes: "#".
std::string href(const json& path) {
  const std::string p = path.get<std::string>();
  if (p.empty() || p[0] == '/' || p[0] == '\\') return "#";
  std::string out = "./";
  for (unsigned char c : p) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') out += static_cast<char>(c);
    else out += fmt::format("%{:02X}", c);
  }
  return out;
}

std::string links(const json& reports) {
  std::string out;
  for (const char* kind : {"html", "json", "junit", "text"})
    if (reports.contains(kind) && !reports[kind].is_null())
      out += fmt::format("<a href=\"{}\" class=\"report-link {}\">{}</a> ", href(reports[kind]), kind, kind);
  return out;
}

std::string case_row(const json& c) {
  const std::string verdict = c.at("verdict");
  const json& reports = c.at("reports");
  const std::string name = reports.contains("html") && !reports["html"].is_null()
                               ? fmt::format("<a href=\"{}\" class=\"case-link\">{}</a>", href(reports["html"]), esc(c.at("name")))
                               : esc(c.at("name"));
  const std::string why = !c.at("error").is_null() ? esc(c["error"]) : esc(c.at("first_failure"));
  return fmt::format("<tr class=\"{0}\" data-status=\"{0}\" data-kind=\"{1}\"><td class=\"hook\">{2}</td><td>{1}</td>"
                     "<td class=\"status-{0}\">{0}</td><td>{3}</td><td>{4}</td><td>{5}</td><td class=\"small\">{6}</td>"
                     "<td class=\"small mono\">{7}</td></tr>\n",
                     esc(verdict), esc(c.at("kind")), name, esc(c.at("summary")), why,
                     c.at("baseline").is_null() ? "none" : esc(c["baseline"]), links(reports), esc(c.at("case")));
}

}  // namespace

std::string index_page(const json& summary) {
  const std::string verdict = summary.at("verdict");
  const json& counts = summary.at("counts");
  std::string body = "<h1>parity: every case</h1>\n";
  body += verdict_banner(verdict, verdict == "pass" ? "PASS" : verdict == "fail" ? "FAIL" : "ERROR",
                         fmt::format("{} cases: {} passed, {} failed, {} could not run (exit {})", summary.at("cases").size(),
                                     esc(counts.at("pass")), esc(counts.at("fail")), esc(counts.at("error")),
                                     esc(summary.at("exit_code"))));
  body += fmt::format("<p class=\"meta\">cases from <b>{}</b>; one JUnit file: <a href=\"{}\">{}</a>; "
                      "this summary as JSON: <a href=\"{}\">{}</a></p>\n",
                      esc(summary.at("cases_from")), href(summary.at("junit")), esc(summary.at("junit")),
                      href(summary.at("json")), esc(summary.at("json")));
  body += filter_controls("case-table", select_filter("case-table", "status", "verdict", {"pass", "fail", "error"}) +
                                            select_filter("case-table", "kind", "kind", {"check", "logprobs"}));
  body += table_head("case-table", {"case:text", "kind:text", "verdict:text", "summary", "first failure or error",
                                    "baseline:text", "reports", "case file:text"});
  for (const json& c : summary.at("cases")) body += case_row(c);
  body += table_end;
  return page(fmt::format("parity — {}", verdict), body);
}

}  // namespace parity::reports::html
