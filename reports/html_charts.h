// Inline SVG charts for the HTML reports (no charting library: a log-scale line chart and a heatmap
// are a few dozen elements each). Every element carries a class the browser test can find and a
// <title> tooltip naming the hook and its value.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace parity::reports::html {

struct ChartPoint {
  int x = 0;                // the hook's position in forward order
  std::optional<double> y;  // nullopt: not a finite number (drawn at the top edge)
  bool failed = false;
  std::string label;        // tooltip: hook and value
};

struct ChartSeries {
  std::string name;  // "isolated" or "chained": also the CSS class
  std::vector<ChartPoint> points;
  std::vector<std::pair<int, double>> budget;  // (x, rel_l2 limit) where the hook is gated on rel_l2
};

struct LayerMark {
  int x = 0;  // the layer's first hook
  std::string label;
};

// rel_l2 (log scale) against forward position, one polyline and dots per series, budgets dashed,
// layer starts marked. Exact zeros sit on the bottom edge as hollow dots.
// id: the svg's element id (one per chart on a page).
std::string drift_chart(const std::vector<ChartSeries>& series, const std::vector<LayerMark>& layers, int x_count,
                        std::string_view id = "drift-chart");

struct HeatCell {
  size_t row = 0, column = 0;
  double fraction = 0;  // measured / budget (1 = at the budget); NaN: not a number
  std::string status;   // "pass", "fail", "skipped"
  std::string title;
};

// Layer × sub-module: colour = fraction of the budget used, on a log scale from 1e-6 to 1; failed
// cells outlined in red.
std::string heatmap(const std::string& mode, const std::vector<std::string>& rows,
                    const std::vector<std::string>& columns, const std::vector<HeatCell>& cells);

}  // namespace parity::reports::html
