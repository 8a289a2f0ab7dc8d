#include "html_page.h"

#include <cmath>
#include <random>

#include <fmt/format.h>

#include "html_assets.h"

namespace parity::reports::html {

std::string esc(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string esc(const nlohmann::json& value) {
  if (value.is_null()) return "";
  if (value.is_string()) return esc(std::string_view(value.get_ref<const std::string&>()));
  return esc(std::string_view(value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
}

std::string num(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (value == 0) return "0";
  if (value == std::round(value) && std::abs(value) < 1e6) return fmt::format("{:.0f}", value);
  return fmt::format("{:.3g}", value);
}

std::string num(const nlohmann::json& value) { return value.is_number() ? num(value.get<double>()) : "NaN"; }

std::string element(const nlohmann::json& value) {
  return value.is_number() ? fmt::format("{:.9g}", value.get<double>()) : "NaN";
}

std::string sort_key(const nlohmann::json& value) {
  return value.is_number() ? fmt::format("{:.17g}", value.get<double>()) : "NaN";
}

std::string page(std::string_view title, const std::string& body) {
  // A fresh nonce per page: only the report's own script runs, even if some text slipped past esc().
  std::random_device random;
  const std::string nonce = fmt::format("{:08x}{:08x}{:08x}", random(), random(), random());
  return fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
      "script-src 'nonce-{0}'; img-src data:\">\n"
      "<title>{1}</title>\n<style>{2}</style>\n</head>\n<body>\n{3}\n"
      "<footer class=\"small\">parity 0.1.0: self-contained report (no network access, no external assets).</footer>\n"
      "<script nonce=\"{0}\">{4}</script>\n</body>\n</html>\n",
      nonce, esc(title), kReportCss, body, kReportJs);
}

std::string verdict_banner(std::string_view verdict, std::string_view headline, std::string_view detail) {
  return fmt::format("<div id=\"verdict\" class=\"verdict {}\" data-verdict=\"{}\">{}{}</div>\n", esc(verdict),
                     esc(verdict), esc(headline),
                     detail.empty() ? "" : fmt::format("<span class=\"detail\">{}</span>", esc(detail)));
}

std::string table_head(std::string_view table_id, std::initializer_list<std::string_view> columns) {
  std::string out = fmt::format("<div class=\"scroll\"><table id=\"{}\" class=\"sortable\">\n<thead><tr>", esc(table_id));
  for (std::string_view c : columns) {
    const size_t colon = c.rfind(':');
    if (colon == std::string_view::npos) out += fmt::format("<th>{}</th>", esc(c));
    else out += fmt::format("<th data-type=\"{}\">{}</th>", esc(c.substr(colon + 1)), esc(c.substr(0, colon)));
  }
  return out + "</tr></thead>\n<tbody>\n";
}

std::string filter_controls(std::string_view table_id, const std::string& selects) {
  return fmt::format(
      "<div class=\"controls\"><input type=\"search\" class=\"filter\" data-table=\"{0}\" placeholder=\"filter rows "
      "(substring)\" aria-label=\"filter rows\">{1}<span class=\"shown small\" data-table=\"{0}\"></span></div>\n",
      esc(table_id), selects);
}

std::string select_filter(std::string_view table_id, std::string_view row_attribute, std::string_view label,
                          std::initializer_list<std::string_view> options) {
  return select_filter(table_id, row_attribute, label, std::vector<std::string>(options.begin(), options.end()));
}

std::string select_filter(std::string_view table_id, std::string_view row_attribute, std::string_view label,
                          const std::vector<std::string>& options) {
  std::string out = fmt::format("<label>{} <select class=\"filter\" data-table=\"{}\" data-key=\"{}\"><option value=\"\">all</option>",
                                esc(label), esc(table_id), esc(row_attribute));
  for (const std::string& o : options) out += fmt::format("<option>{}</option>", esc(o));
  return out + "</select></label>";
}

}  // namespace parity::reports::html
