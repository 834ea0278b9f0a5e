// Inline SVG charts and an HTML page shell for the bias reports: everything is
// self-contained text (no scripts, fonts or external resources), so a report
// reads offline and can be archived with the audit's JSON.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tinyemo::analysis::html {

std::string escape(std::string_view text);

// Okabe-Ito colour-blind-safe categorical colours (cycled).
std::string category_colour(size_t i);

// One 100%-stacked horizontal bar per row (shares per category, summing to 1),
// with a legend and the share printed inside segments wide enough to hold it.
struct StackedBars {
  std::vector<std::string> rows;
  std::vector<std::string> categories;
  std::vector<std::vector<double>> shares;  // [row][category]
  std::vector<std::string> row_notes;       // printed right of each bar (e.g. "n = 300"); may be empty
};
std::string stacked_bars_svg(const StackedBars& chart);

// Rows x columns of signed values on a diverging blue-white-red scale
// (symmetric, |value| = `scale` saturates), the value printed in each cell,
// marked cells outlined in black. NaN cells are grey.
struct HeatMap {
  std::vector<std::string> rows;
  std::vector<std::string> cols;
  std::vector<std::vector<double>> values;
  std::vector<std::vector<bool>> marked;  // may be empty
  double scale = 0.3;
  double print_factor = 100.0;  // printed value = value * factor
  std::string unit = "";        // appended to printed values
};
std::string heat_map_svg(const HeatMap& chart);

// Point estimates with intervals on a common horizontal axis [lo, hi], a
// vertical reference line at `reference` (skipped when outside the axis).
struct IntervalPlot {
  std::vector<std::string> rows;
  std::vector<double> value, low, high;  // NaN low/high: no interval drawn
  double axis_low = 0.0, axis_high = 1.0, reference = 0.0;
  double print_factor = 100.0;
  std::string unit = "%";
};
std::string interval_plot_svg(const IntervalPlot& chart);

// A complete HTML document with the reports' stylesheet.
std::string page(std::string_view title, std::string_view body);

}  // namespace tinyemo::analysis::html
