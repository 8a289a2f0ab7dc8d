#include "html_charts.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "html_page.h"

namespace parity::reports::html {

namespace {

constexpr double kWidth = 1000, kHeight = 340, kLeft = 64, kRight = 16, kTop = 16, kBottom = 44;

struct LogAxis {
  int low = -9, high = -3;  // decades
  double y(double value) const {
    const double t = (std::log10(value) - low) / (high - low);
    return kTop + (1 - std::clamp(t, 0.0, 1.0)) * (kHeight - kTop - kBottom);
  }
};

LogAxis axis_for(const std::vector<ChartSeries>& series) {
  double lo = INFINITY, hi = 0;
  auto see = [&](double v) {
    if (v > 0 && std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  };
  for (const ChartSeries& s : series) {
    for (const ChartPoint& p : s.points)
      if (p.y) see(*p.y);
    for (const auto& [x, limit] : s.budget) see(limit);
  }
  if (!std::isfinite(lo)) return {};
  LogAxis a{static_cast<int>(std::floor(std::log10(lo))), static_cast<int>(std::ceil(std::log10(hi)))};
  a.low = std::max(a.low, -16);  // a 1e-30 outlier would squash everything else
  if (a.high <= a.low) a.high = a.low + 1;
  return a;
}

double x_of(int x, int x_count) {
  return kLeft + (x_count > 1 ? static_cast<double>(x) / (x_count - 1) : 0.5) * (kWidth - kLeft - kRight);
}

std::string axes(const LogAxis& a, const std::vector<LayerMark>& layers, int x_count) {
  std::string out;
  for (int d = a.low; d <= a.high; ++d) {
    const double y = a.y(std::pow(10.0, d));
    out += fmt::format("<line class=\"grid\" x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\"/>"
                       "<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">1e{}</text>\n",
                       kLeft, kWidth - kRight, y, y, kLeft - 6, y + 4, d);
  }
  const size_t every = std::max<size_t>(1, layers.size() / 24);
  for (size_t i = 0; i < layers.size(); ++i) {
    const double x = x_of(layers[i].x, x_count);
    out += fmt::format("<line class=\"layer-line\" x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1}\" y2=\"{2}\"/>", x, kTop,
                       kHeight - kBottom);
    if (i % every == 0)
      out += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", x, kHeight - kBottom + 14,
                         esc(layers[i].label));
  }
  out += fmt::format("<line class=\"axis\" x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{2}\"/>", kLeft, kTop, kHeight - kBottom);
  out += fmt::format("<line class=\"axis\" x1=\"{0}\" x2=\"{1}\" y1=\"{2}\" y2=\"{2}\"/>", kLeft, kWidth - kRight,
                     kHeight - kBottom);
  out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">hooks in forward order (layer starts marked)</text>",
                     (kLeft + kWidth) / 2, kHeight - 8);
  out += fmt::format("<text transform=\"translate(14 {}) rotate(-90)\" text-anchor=\"middle\">rel_l2 (log)</text>\n",
                     (kTop + kHeight - kBottom) / 2);
  return out;
}

std::string series_svg(const ChartSeries& s, const LogAxis& a, int x_count) {
  const double bottom = kHeight - kBottom;
  std::string path, dots;
  for (const ChartPoint& p : s.points) {
    const bool exact = p.y && *p.y == 0;
    const double y = !p.y ? kTop : exact ? bottom : a.y(*p.y);
    path += fmt::format("{}{:.1f},{:.1f}", path.empty() ? "" : " ", x_of(p.x, x_count), y);
    dots += fmt::format("<circle class=\"point {}{}{}\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"{}\"><title>{}</title></circle>\n",
                        esc(s.name), exact ? " exact" : "", p.failed ? " fail" : "", x_of(p.x, x_count), y,
                        p.failed ? 4 : 2.5, esc(p.label));
  }
  std::string budget;
  // A step line: each gated hook's limit from its own x to the next one's.
  for (size_t i = 0; i < s.budget.size(); ++i) {
    const double y = a.y(s.budget[i].second);
    const double x0 = x_of(s.budget[i].first, x_count);
    const double x1 = i + 1 < s.budget.size() ? x_of(s.budget[i + 1].first, x_count) : x0;
    budget += fmt::format("{}{:.1f},{:.1f} {:.1f},{:.1f}", budget.empty() ? "" : " ", x0, y, x1, y);
  }
  std::string out = fmt::format("<g class=\"series-group\" data-series=\"{}\">", esc(s.name));
  if (!budget.empty())
    out += fmt::format("<polyline class=\"budget {}\" points=\"{}\"><title>{} budget (rel_l2)</title></polyline>\n",
                       esc(s.name), budget, esc(s.name));
  out += fmt::format("<polyline class=\"series {}\" points=\"{}\"/>\n{}</g>\n", esc(s.name), path, dots);
  return out;
}

// Blue (far below the budget) to red (at it), lightness falling as the fraction grows.
std::string colour(double fraction) {
  if (std::isnan(fraction)) return "#6e7781";
  if (fraction <= 0) return "#f3f8ff";
  const double t = std::clamp((std::log10(fraction) + 6) / 6, 0.0, 1.0);
  return fmt::format("hsl({:.0f},75%,{:.0f}%)", 215 - 205 * t, 88 - 38 * t);
}

}  // namespace

std::string drift_chart(const std::vector<ChartSeries>& series, const std::vector<LayerMark>& layers, int x_count,
                        std::string_view id) {
  const LogAxis a = axis_for(series);
  std::string out = fmt::format(
      "<div class=\"chart\"><svg id=\"{}\" class=\"drift-chart\" viewBox=\"0 0 {} {}\" role=\"img\" "
      "aria-label=\"rel_l2 against depth\">\n",
      esc(id), kWidth, kHeight);
  out += axes(a, layers, x_count);
  for (const ChartSeries& s : series) out += series_svg(s, a, x_count);
  out += "</svg>\n<div class=\"legend small\">";
  for (const ChartSeries& s : series)
    out += fmt::format("<svg width=\"26\" height=\"10\"><line class=\"{0}\" x1=\"0\" x2=\"26\" y1=\"5\" y2=\"5\" "
                       "stroke-width=\"2\"/></svg> {0} &nbsp; <svg width=\"26\" height=\"10\"><line class=\"{0}\" "
                       "x1=\"0\" x2=\"26\" y1=\"5\" y2=\"5\" stroke-dasharray=\"6 4\"/></svg> {0} budget &nbsp; ",
                       esc(s.name));
  return out + "hollow dots: exactly 0; dots on the top edge: not a number; red rings: failed</div></div>\n";
}

std::string heatmap(const std::string& mode, const std::vector<std::string>& rows,
                    const std::vector<std::string>& columns, const std::vector<HeatCell>& cells) {
  constexpr double kLabel = 72, kHeader = 150;
  const double cell_w = columns.empty() ? 20 : std::min(28.0, (kWidth - kLabel - 8) / columns.size());
  const double cell_h = 16;
  // The last column labels lean right past the last cell.
  const double width = kLabel + cell_w * columns.size() + 110, height = kHeader + cell_h * rows.size() + 8;
  std::string out = fmt::format("<div class=\"heatmap\"><svg class=\"heatmap-{0}\" data-mode=\"{0}\" viewBox=\"0 0 {1:.0f} "
                                "{2:.0f}\" style=\"max-width:{1:.0f}px\" role=\"img\" aria-label=\"{0}: layer by "
                                "sub-module, fraction of budget\">\n",
                                esc(mode), width, height);
  for (size_t c = 0; c < columns.size(); ++c)
    out += fmt::format("<text transform=\"translate({:.1f} {}) rotate(-60)\">{}</text>\n",
                       kLabel + (c + 0.6) * cell_w, kHeader - 4, esc(columns[c]));
  for (size_t r = 0; r < rows.size(); ++r)
    out += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", kLabel - 6,
                       kHeader + (r + 0.75) * cell_h, esc(rows[r]));
  for (const HeatCell& cell : cells)
    out += fmt::format("<rect class=\"cell {}\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" "
                       "fill=\"{}\"><title>{}</title></rect>\n",
                       esc(cell.status), kLabel + cell.column * cell_w, kHeader + cell.row * cell_h, cell_w - 1,
                       cell_h - 1, cell.status == "skipped" ? "#eaeef2" : colour(cell.fraction), esc(cell.title));
  return out + "</svg></div>\n";
}

}  // namespace parity::reports::html
