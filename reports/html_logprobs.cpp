// The HTML page of a `parity logprobs` result (its JSON, docs/cli.md "parity logprobs").
#include <fmt/format.h>

#include "html_page.h"
#include "html_report.h"

namespace parity::reports::html {

namespace {

using nlohmann::json;

// A token's text as the tokenizer decodes it (escaped: it is data), or its id without a tokenizer.
std::string token(const json& t) {
  if (t.at("text").is_null()) return fmt::format("<span class=\"mono\">#{}</span>", esc(t.at("id")));
  return fmt::format("<span class=\"tok-text\" title=\"id {}\">{}</span>", esc(t.at("id")), esc(t.at("text")));
}

std::string context(const json& listed) {
  std::string out = "<span class=\"ctx\">";
  for (const json& t : listed.at("context_before")) out += token(t);
  out += fmt::format("</span><mark class=\"tok\">{}</mark><span class=\"ctx\">",
                     token({{"id", listed.at("token_id")}, {"text", listed.at("text")}}));
  for (const json& t : listed.at("context_after")) out += token(t);
  return out + "</span>";
}

std::string top_k(const json& alternatives) {
  std::string out;
  for (const json& a : alternatives) out += fmt::format("{} <span class=\"small\">{}</span><br>", token(a), num(a.at("logprob")));
  return out;
}

std::string token_table(const std::string& id, const json& tokens) {
  std::string out = table_head(id, {"rank:num", "sequence:num", "position:num", "token:text", "train logprob:num",
                                    "rollout logprob:num", "Δ:num", "context", "train top-k", "rollout top-k"});
  for (const json& t : tokens)
    out += fmt::format("<tr class=\"token-row\"><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>"
                       "<td>{}</td><td class=\"num\" data-v=\"{}\">{}</td><td class=\"num\" data-v=\"{}\">{}</td>"
                       "<td class=\"num\" data-v=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                       esc(t.at("rank")), esc(t.at("sequence")), esc(t.at("position")),
                       token({{"id", t.at("token_id")}, {"text", t.at("text")}}), sort_key(t.at("train_logprob")),
                       num(t.at("train_logprob")), sort_key(t.at("rollout_logprob")), num(t.at("rollout_logprob")),
                       sort_key(t.at("diff")), num(t.at("diff")), context(t), top_k(t.at("train_top_k")),
                       top_k(t.at("rollout_top_k")));
  return out + table_end;
}

std::string bound_text(const json& bound) {
  if (bound.is_null()) return "";
  if (!bound.at("min").is_null() && !bound.at("max").is_null())
    return fmt::format("in [{}, {}]", num(bound["min"]), num(bound["max"]));
  return bound.at("min").is_null() ? "&lt;= " + num(bound.at("max")) : "&gt;= " + num(bound.at("min"));
}

std::string metric_table(const json& metrics) {
  std::string out = "<h2 id=\"metrics\">Metrics</h2>\n";
  out += filter_controls("metric-table", select_filter("metric-table", "status", "status", {"pass", "fail", "not gated"}));
  out += table_head("metric-table", {"metric:text", "value:num", "bound", "status:text", "bound from", "convention"});
  for (const json& m : metrics) {
    const std::string status = m.at("status");
    out += fmt::format("<tr class=\"{0}\" data-status=\"{1}\"><td class=\"mono\">{2}</td><td class=\"num\" data-v=\"{3}\">{4}</td>"
                       "<td class=\"num\">{5}</td><td class=\"status-{0}\">{1}</td><td class=\"small\">{6}</td>"
                       "<td class=\"small\">{7}</td></tr>\n",
                       status == "fail" ? "fail" : status == "pass" ? "pass" : "not-gated", esc(status), esc(m.at("name")),
                       sort_key(m.at("value")), num(m.at("value")), bound_text(m.at("bound")),
                       m.at("bound").is_null() ? "" : esc(m["bound"].at("rule")), esc(m.at("convention")));
  }
  return out + table_end;
}

}  // namespace

std::string logprobs_page(const json& result) {
  const json& run = result.at("run");
  const std::string verdict = result.at("verdict");
  std::string detail;
  for (const json& m : result.at("failed_metrics")) detail += (detail.empty() ? "failed: " : ", ") + m.get<std::string>();
  for (const json& p : result.at("problems")) detail += (detail.empty() ? "" : "; ") + p.get<std::string>();
  if (!result.at("baseline").is_null() && result["baseline"].at("verdict") == "fail")
    detail += std::string(detail.empty() ? "" : "; ") + "moved outside its baseline band (see Baseline)";
  std::string body = fmt::format("<h1>parity logprobs: {}</h1>\n", esc(run.at("source")));
  body += verdict_banner(verdict, verdict == "pass" ? "PASS" : "FAIL", detail.empty() ? "every gated metric within its bound" : detail);
  body += fmt::format("<p class=\"meta\"><b>train</b> {}</p><p class=\"meta\"><b>rollout</b> {}</p>"
                      "<p class=\"meta\">{} sequences ({} with scored tokens), {} tokens, {} scored; budget {}; "
                      "tokenizer {}</p><p class=\"meta\">{}</p>\n",
                      esc(run.at("train")), esc(run.at("rollout")), esc(run.at("sequences")), esc(run.at("sequences_scored")),
                      esc(run.at("tokens")), esc(run.at("scored_tokens")), esc(result.at("budget")),
                      run.at("tokenizer").is_null() ? "none (token ids shown)" : esc(run["tokenizer"]),
                      esc(result.at("diff_convention")));
  const json& at = result.at("abs_diff_max_at");
  if (at.at("index").is_number() && at["index"].get<int64_t>() >= 0)
    body += fmt::format("<p class=\"meta\">max |Δ| at sequence {}, position {}</p>\n", esc(at.at("sequence")),
                        esc(at.at("position")));
  const json& cat = result.at("catastrophic");
  body += fmt::format("<h2 id=\"catastrophic\">Catastrophic tokens: {} with |Δ| &gt; {} nats</h2>\n", esc(cat.at("count")),
                      num(cat.at("threshold")));
  body += cat.at("tokens").empty() ? "<p>None.</p>\n" : token_table("catastrophic-table", cat.at("tokens"));
  const json& nonfinite = result.at("nonfinite");
  if (nonfinite.at("count").get<int64_t>() > 0)
    body += fmt::format("<h2 id=\"nonfinite\">Non-finite logprobs: {} scored tokens</h2>\n", esc(nonfinite.at("count"))) +
            token_table("nonfinite-table", nonfinite.at("tokens"));
  body += metric_table(result.at("metrics"));
  body += baseline_panel(result.at("baseline"));
  return page(fmt::format("parity logprobs {} — {}", run.at("source").get<std::string>(), verdict), body);
}

}  // namespace parity::reports::html
