#include "html_report.h"

#include <doctest/doctest.h>

#include "errors.h"

namespace parity::reports {

namespace {

using nlohmann::json;

std::string error_of(const json& result) {
  try {
    html_report(result, "r.json");
  } catch (const harness::InputError& e) {
    return e.what();
  }
  return "";
}

json hook(const std::string& mode, const std::string& name, const std::string& status, double rel_l2, double limit) {
  return {{"mode", mode}, {"hook", name}, {"status", status}, {"kind", "float"}, {"shape", {2, 3}},
          {"rel_l2", rel_l2}, {"max_abs", rel_l2 * 10}, {"max_abs_at", {1, 2}}, {"ref_at_max_abs", 0.5},
          {"hf_at_max_abs", 0.25}, {"cosine", 1.0}, {"message", status == "fail" ? "rel_l2 over budget" : ""},
          {"budget", {{"metric", "rel_l2"}, {"limit", limit}, {"bound", "max"}, {"rule", "default"}}},
          {"measured", rel_l2}, {"worst", json::array({{{"at", {1, 2}}, {"ref", 0.5}, {"hf", 0.25}, {"abs_diff", 0.25}}})}};
}

json check_result() {
  json hooks = json::array({hook("isolated", "model.embed_tokens", "pass", 0, 1e-5),
                            hook("isolated", "model.layers.0.mlp<script>", "pass", 3.14e-7, 1e-5),
                            hook("isolated", "model.layers.1.mlp<script>", "fail", 2e-5, 1e-5),
                            hook("isolated", "model.layers.1@in1", "pass", 0, 1e-5)});
  return {{"schema", "parity-check/1"},
          {"verdict", "fail"},
          {"first_failure", {{"mode", "isolated"}, {"hook", "model.layers.1.mlp<script>"}, {"message", "rel_l2 over budget"}}},
          {"runs", json::array({{{"fixture", "x.h5"}, {"mode", "isolated"}, {"precision", "f32"}, {"budget", "b.toml"},
                                 {"verdict", "fail"}, {"problems", json::array()}, {"passed", 3}, {"failed", 1},
                                 {"skipped", 0}}})},
          {"hooks", hooks},
          {"baseline", nullptr}};
}

}  // namespace

TEST_CASE("check page: banner, first divergence, chart, heatmap and table, every fixture string escaped") {
  const std::string html = html_report(check_result(), "r.json");
  CHECK(html.find("<div id=\"verdict\" class=\"verdict fail\"") != std::string::npos);
  CHECK(html.find("<script>") == std::string::npos);  // only <script nonce=...> of the page itself
  CHECK(html.find("model.layers.1.mlp&lt;script&gt;") != std::string::npos);
  CHECK(html.find("id=\"first-divergence-row\"") != std::string::npos);
  CHECK(html.find("<svg id=\"drift-chart\"") != std::string::npos);
  CHECK(html.find("class=\"heatmap-isolated\"") != std::string::npos);
  CHECK(html.find("<title>isolated model.layers.1.mlp&lt;script&gt;: fail, 200% of rel_l2 &lt;= 1e-05</title>") !=
        std::string::npos);  // escaped once, not twice
  CHECK(html.find("rel_l2 &lt;= 3.2e-07") != std::string::npos);  // the smallest budget 3.14e-7 passes
  CHECK(html.find("<td class=\"mono\">[1,2]</td><td class=\"num\">0.5</td>") != std::string::npos);  // worst element
  CHECK(html.find("data-baseline=\"none\"") != std::string::npos);
}

TEST_CASE("html_report: any other document, or a result missing a key, is an input error naming the file") {
  CHECK(error_of({{"schema", "parity-baseline/1"}}) ==
        "[report r.json] schema \"parity-baseline/1\" is not a parity result (parity-check/1, parity-logprobs/1, "
        "parity-summary/1)");
  CHECK(error_of(json::array()).starts_with("[report r.json] schema \"\" is not a parity result"));
  json truncated = check_result();
  truncated.erase("hooks");
  CHECK(error_of(truncated).starts_with("[report r.json] not a valid parity-check/1 result: "));
  CHECK(error_of(truncated).find("hooks") != std::string::npos);
  json mistyped = check_result();
  mistyped["hooks"][0]["status"] = 3;
  CHECK(error_of(mistyped).starts_with("[report r.json] not a valid parity-check/1 result: "));
}

TEST_CASE("index page: report paths are links only when relative; names and errors escaped") {
  const json summary = {
      {"schema", "parity-summary/1"}, {"verdict", "error"}, {"exit_code", 2}, {"cases_from", "cases/"},
      {"json", "summary.json"}, {"junit", "junit.xml"}, {"counts", {{"pass", 1}, {"fail", 0}, {"error", 1}}},
      {"cases", json::array({{{"case", "cases/a.toml"}, {"name", "a<i>"}, {"kind", "check"}, {"verdict", "pass"},
                              {"exit_code", 0}, {"summary", "ok"}, {"first_failure", ""}, {"error", nullptr},
                              {"baseline", "pass"}, {"reports", {{"html", "javascript:alert(1)"}, {"json", "/etc/passwd"},
                                                                 {"text", "a.txt"}}}},
                             {{"case", "cases/b.toml"}, {"name", "b"}, {"kind", "check"}, {"verdict", "error"},
                              {"exit_code", 2}, {"summary", ""}, {"first_failure", ""}, {"error", "<img src=x>"},
                              {"baseline", nullptr}, {"reports", {{"text", "b.txt"}}}}})}};
  const std::string html = html_report(summary, "summary.json");
  CHECK(html.find("javascript:") == std::string::npos);
  CHECK(html.find("href=\"./javascript%3Aalert%281%29\"") != std::string::npos);  // a file name, not a scheme
  CHECK(html.find("/etc/passwd") == std::string::npos);
  CHECK(html.find("<a href=\"./a.txt\" class=\"report-link text\">") != std::string::npos);
  CHECK(html.find("a&lt;i&gt;") != std::string::npos);
  CHECK(html.find("&lt;img src=x&gt;") != std::string::npos);
  CHECK(html.find("data-verdict=\"error\"") != std::string::npos);
}

}  // namespace parity::reports
