// A small hand-written SVG line chart: a few series of (x, y) points over shared axes, with ticks,
// labels and a legend. Enough for the sweep's "accuracy and retention against bits / disk size"
// panels; no dependency, deterministic output (same data, same bytes).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace quantlab::analysis {

struct ChartPoint {
  double x = 0, y = 0;
  std::string label;  // drawn beside the point when not empty (e.g. "6-bit")
};

struct ChartSeries {
  std::string name;
  std::string color;  // any SVG color, e.g. "#1f77b4"
  std::vector<ChartPoint> points;  // drawn in this order; NaN y values are skipped
  bool dashed = false;
};

struct ChartPanel {
  std::string title, x_label, y_label;
  std::optional<double> x_min, x_max;  // default: the data's range, padded
  double y_min = 0, y_max = 100;
  bool x_reversed = false;  // e.g. bits falling from left to right
  std::vector<ChartSeries> series;
  std::vector<double> y_guides;  // horizontal dashed guide lines (thresholds), in y units
};

// Panels side by side in one SVG document, each `panel_width` x `panel_height` pixels.
std::string render_svg(const std::vector<ChartPanel>& panels, const std::string& title, int panel_width = 440,
                       int panel_height = 320);

// Escapes &, <, >, " for SVG text and attributes.
std::string svg_escape(const std::string& text);

// "Nice" tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten, about `count` ticks.
std::vector<double> nice_ticks(double lo, double hi, int count = 5);

}  // namespace quantlab::analysis
