#include "analysis/svg.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace tinyemo::analysis::html {
namespace {

constexpr int kLabelWidth = 150;  // left column for row names
constexpr int kRowHeight = 26;
constexpr int kFontSize = 12;

// Rough text width in pixels for layout (sans-serif at 12px).
int text_width(std::string_view s) { return static_cast<int>(s.size()) * 7; }

std::string text(double x, double y, std::string_view content, std::string_view anchor = "start",
                 std::string_view extra = "") {
  return fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"{}\" {}>{}</text>", x, y, anchor, extra,
                     escape(content));
}

// Diverging colour for v in [-1, 1]: blue (negative) - white - red (positive).
std::string diverging(double v) {
  v = std::clamp(v, -1.0, 1.0);
  const double t = std::fabs(v);
  const int r0 = v >= 0 ? 178 : 33, g0 = v >= 0 ? 24 : 102, b0 = v >= 0 ? 43 : 172;
  const auto mix = [t](int c) { return static_cast<int>(std::lround(255.0 + (c - 255.0) * t)); };
  return fmt::format("#{:02x}{:02x}{:02x}", mix(r0), mix(g0), mix(b0));
}

std::string svg_open(int width, int height, std::string_view label) {
  return fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" role=\"img\" "
      "aria-label=\"{2}\" font-family=\"sans-serif\" font-size=\"{3}\">",
      width, height, escape(label), kFontSize);
}

}  // namespace

std::string escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
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

std::string category_colour(size_t i) {
  static const char* kColours[] = {"#E69F00", "#56B4E9", "#009E73", "#F0E442",
                                   "#0072B2", "#D55E00", "#CC79A7", "#999999"};
  return kColours[i % 8];
}

std::string stacked_bars_svg(const StackedBars& c) {
  const int bar_width = 520, note_width = 90;
  const int legend_rows = static_cast<int>((c.categories.size() + 5) / 6);
  const int width = kLabelWidth + bar_width + note_width;
  const int height = static_cast<int>(c.rows.size()) * kRowHeight + 20 * legend_rows + 16;
  std::string s = svg_open(width, height, "stacked bar chart");
  for (size_t r = 0; r < c.rows.size(); ++r) {
    const double y = static_cast<double>(r) * kRowHeight + 4;
    s += text(kLabelWidth - 8, y + 15, c.rows[r], "end");
    double x = kLabelWidth;
    for (size_t k = 0; k < c.categories.size(); ++k) {
      const double share = r < c.shares.size() && k < c.shares[r].size() ? c.shares[r][k] : 0.0;
      const double w = share * bar_width;
      if (w <= 0.0) continue;
      s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"20\" fill=\"{}\"><title>{}: {:.1f}%</title></rect>",
                       x, y, w, category_colour(k), escape(c.rows[r] + " / " + c.categories[k]), 100.0 * share);
      const std::string pct = fmt::format("{:.0f}%", 100.0 * share);
      if (w > text_width(pct) + 4) s += text(x + w / 2, y + 14, pct, "middle", "fill=\"#111\"");
      x += w;
    }
    if (r < c.row_notes.size()) s += text(kLabelWidth + bar_width + 6, y + 15, c.row_notes[r]);
  }
  // Legend.
  const double legend_y = static_cast<double>(c.rows.size()) * kRowHeight + 10;
  for (size_t k = 0; k < c.categories.size(); ++k) {
    const double x = kLabelWidth + static_cast<double>(k % 6) * 95;
    const double y = legend_y + static_cast<double>(k / 6) * 20;
    s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"12\" height=\"12\" fill=\"{}\"/>", x, y,
                     category_colour(k));
    s += text(x + 16, y + 10, c.categories[k]);
  }
  return s + "</svg>";
}

std::string heat_map_svg(const HeatMap& c) {
  int col_width = 72;
  for (const auto& name : c.cols) col_width = std::max(col_width, text_width(name) + 10);
  const int top = 24, legend_height = 40;
  // The colour legend (a 210-pixel ramp, then its caption) may be wider than
  // the cells: a one-column map of 72 pixels would cut it off.
  const std::string legend_caption = fmt::format("{:+.0f}{}   (black outline: flagged)", c.scale * c.print_factor, c.unit);
  const int width = std::max(kLabelWidth + col_width * static_cast<int>(c.cols.size()) + 10,
                             kLabelWidth + 214 + text_width(legend_caption) + 10);
  const int height = top + kRowHeight * static_cast<int>(c.rows.size()) + legend_height;
  std::string s = svg_open(width, height, "heat map");
  for (size_t k = 0; k < c.cols.size(); ++k)
    s += text(kLabelWidth + (k + 0.5) * col_width, top - 8, c.cols[k], "middle", "font-weight=\"bold\"");
  for (size_t r = 0; r < c.rows.size(); ++r) {
    const double y = top + static_cast<double>(r) * kRowHeight;
    s += text(kLabelWidth - 8, y + 17, c.rows[r], "end");
    for (size_t k = 0; k < c.cols.size(); ++k) {
      const double v = r < c.values.size() && k < c.values[r].size() ? c.values[r][k] : NAN;
      const bool marked = r < c.marked.size() && k < c.marked[r].size() && c.marked[r][k];
      const double x = kLabelWidth + static_cast<double>(k) * col_width;
      const std::string fill = std::isnan(v) ? "#dddddd" : diverging(v / c.scale);
      s += fmt::format(
          "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{}\" height=\"{}\" fill=\"{}\" stroke=\"{}\" stroke-width=\"{}\"/>",
          x + 1, y + 1, col_width - 2, kRowHeight - 2, fill, marked ? "#000" : "#fff", marked ? 3 : 1);
      const std::string value = std::isnan(v) ? "n/a" : fmt::format("{:+.1f}{}", v * c.print_factor, c.unit);
      const bool dark = !std::isnan(v) && std::fabs(v / c.scale) > 0.6;
      s += text(x + col_width / 2.0, y + 17, value, "middle",
                fmt::format("fill=\"{}\"{}", dark ? "#fff" : "#111", marked ? " font-weight=\"bold\"" : ""));
    }
  }
  // Colour legend: -scale .. 0 .. +scale.
  const double ly = top + kRowHeight * static_cast<double>(c.rows.size()) + 12;
  for (int i = 0; i <= 20; ++i) {
    const double v = -1.0 + i / 10.0;
    s += fmt::format("<rect x=\"{}\" y=\"{:.1f}\" width=\"10\" height=\"10\" fill=\"{}\"/>", kLabelWidth + i * 10, ly,
                     diverging(v));
  }
  s += text(kLabelWidth - 4, ly + 9, fmt::format("{:+.0f}{}", -c.scale * c.print_factor, c.unit), "end");
  s += text(kLabelWidth + 214, ly + 9, legend_caption);
  return s + "</svg>";
}

std::string interval_plot_svg(const IntervalPlot& c) {
  const int axis_width = 420, top = 10, note_width = 170;
  const int width = kLabelWidth + axis_width + note_width;
  const int height = top + kRowHeight * static_cast<int>(c.rows.size()) + 30;
  const auto px = [&](double v) {
    return kLabelWidth + (std::clamp(v, c.axis_low, c.axis_high) - c.axis_low) / (c.axis_high - c.axis_low) * axis_width;
  };
  std::string s = svg_open(width, height, "interval plot");
  const double bottom = top + kRowHeight * static_cast<double>(c.rows.size());
  if (c.reference >= c.axis_low && c.reference <= c.axis_high) {
    s += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#888\" stroke-dasharray=\"4 3\"/>",
                     px(c.reference), top, bottom);
  }
  s += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#444\"/>", kLabelWidth, bottom,
                   kLabelWidth + axis_width, bottom);
  for (int i = 0; i <= 4; ++i) {
    const double v = c.axis_low + (c.axis_high - c.axis_low) * i / 4.0;
    s += text(px(v), bottom + 16, fmt::format("{:.0f}{}", v * c.print_factor, c.unit), "middle");
  }
  for (size_t r = 0; r < c.rows.size(); ++r) {
    const double y = top + static_cast<double>(r) * kRowHeight + kRowHeight / 2.0;
    s += text(kLabelWidth - 8, y + 4, c.rows[r], "end");
    const bool has_ci = r < c.low.size() && !std::isnan(c.low[r]) && !std::isnan(c.high[r]);
    if (has_ci) {
      s += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#0072B2\" stroke-width=\"2\"/>",
                       px(c.low[r]), y, px(c.high[r]), y);
    }
    if (!std::isnan(c.value[r])) {
      s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"5\" fill=\"#0072B2\"/>", px(c.value[r]), y);
      std::string note = fmt::format("{:.1f}{}", c.value[r] * c.print_factor, c.unit);
      if (has_ci)
        note += fmt::format(" [{:.1f}, {:.1f}]", c.low[r] * c.print_factor, c.high[r] * c.print_factor);
      s += text(kLabelWidth + axis_width + 8, y + 4, note);
    }
  }
  return s + "</svg>";
}

std::string page(std::string_view title, std::string_view body) {
  static const char* kStyle = R"(
body { font-family: sans-serif; max-width: 1000px; margin: 24px auto; padding: 0 16px; color: #111; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 4px; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 4px; margin-top: 32px; }
.review { background: #eef5fb; border-left: 5px solid #0072B2; padding: 10px 14px; margin: 14px 0; }
.warn { background: #fff6e0; border-left: 5px solid #E69F00; padding: 8px 14px; margin: 14px 0; }
.warn li { margin: 3px 0; }
table { border-collapse: collapse; margin: 10px 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } td.t, th.t { text-align: left; }
.flag { border: 1px solid #bbb; border-left: 6px solid #D55E00; padding: 8px 12px; margin: 10px 0; }
.flag h3 { margin: 0 0 4px 0; font-size: 1.05em; }
.muted { color: #555; font-size: 0.9em; }
code { background: #f3f3f3; padding: 1px 4px; }
)";
  return fmt::format("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n"
                     "<style>{}</style>\n</head>\n<body>\n{}\n</body>\n</html>\n",
                     escape(title), kStyle, body);
}

}  // namespace tinyemo::analysis::html
