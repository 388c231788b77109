#include "analysis/svg_chart.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace quantlab::analysis {

namespace {

constexpr double kLeft = 58, kRight = 18, kTop = 40, kBottom = 50, kLegendRow = 16;

std::string fmt_tick(double v) {
  if (std::fabs(v) >= 1e9) return fmt::format("{:g}G", v / 1e9);
  if (std::fabs(v) >= 1e6) return fmt::format("{:g}M", v / 1e6);
  return fmt::format("{:g}", v);
}

struct Frame {
  double x0, y0, w, h;  // plot area in panel coordinates
  double xmin, xmax, ymin, ymax;
  bool x_reversed;

  double px(double x) const {
    const double t = (x - xmin) / (xmax - xmin);
    return x0 + (x_reversed ? 1 - t : t) * w;
  }
  double py(double y) const { return y0 + h - (std::clamp(y, ymin, ymax) - ymin) / (ymax - ymin) * h; }
};

Frame make_frame(const ChartPanel& p, int width, int height) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const auto& s : p.series)
    for (const auto& pt : s.points) {
      lo = std::min(lo, pt.x);
      hi = std::max(hi, pt.x);
    }
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  const double pad = hi > lo ? 0.06 * (hi - lo) : 0.5;
  Frame f{kLeft, kTop, width - kLeft - kRight, height - kTop - kBottom - kLegendRow * double(p.series.size() > 0),
          p.x_min.value_or(lo - pad), p.x_max.value_or(hi + pad), p.y_min, p.y_max, p.x_reversed};
  if (f.xmax <= f.xmin) f.xmax = f.xmin + 1;
  if (f.ymax <= f.ymin) f.ymax = f.ymin + 1;
  return f;
}

void draw_axes(const ChartPanel& p, const Frame& f, std::string& svg) {
  svg += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="none" stroke="#888"/>)" "\n",
                     f.x0, f.y0, f.w, f.h);
  for (double t : nice_ticks(f.ymin, f.ymax)) {
    const double y = f.py(t);
    svg += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="#eee"/>)" "\n", f.x0, y, f.x0 + f.w, y);
    svg += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" text-anchor="end" font-size="11">{}</text>)" "\n", f.x0 - 6, y + 4,
                       fmt_tick(t));
  }
  for (double t : nice_ticks(f.xmin, f.xmax)) {
    const double x = f.px(t);
    svg += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="#888"/>)" "\n", x, f.y0 + f.h, x,
                       f.y0 + f.h + 4);
    svg += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" text-anchor="middle" font-size="11">{}</text>)" "\n", x,
                       f.y0 + f.h + 17, fmt_tick(t));
  }
  for (double g : p.y_guides)
    svg += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="#c33" stroke-dasharray="4 3"/>)" "\n",
                       f.x0, f.py(g), f.x0 + f.w, f.py(g));
  svg += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" text-anchor="middle" font-size="14" font-weight="bold">{}</text>)" "\n",
                     f.x0 + f.w / 2, f.y0 - 16, svg_escape(p.title));
  svg += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" text-anchor="middle" font-size="12">{}</text>)" "\n", f.x0 + f.w / 2,
                     f.y0 + f.h + 34, svg_escape(p.x_label));
  svg += fmt::format(R"~(<text transform="translate({:.1f} {:.1f}) rotate(-90)" text-anchor="middle" font-size="12">{}</text>)~" "\n",
                     f.x0 - 42, f.y0 + f.h / 2, svg_escape(p.y_label));
}

void draw_series(const ChartSeries& s, const Frame& f, std::string& svg) {
  std::string path;
  for (const auto& pt : s.points) {
    if (std::isnan(pt.y)) continue;
    path += fmt::format("{}{:.1f},{:.1f}", path.empty() ? "" : " ", f.px(pt.x), f.py(pt.y));
  }
  if (!path.empty())
    svg += fmt::format(R"(<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{}/>)" "\n", path,
                       svg_escape(s.color), s.dashed ? R"( stroke-dasharray="6 4")" : "");
  for (const auto& pt : s.points) {
    if (std::isnan(pt.y)) continue;
    svg += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="3.5" fill="{}"><title>{}: {:g}</title></circle>)" "\n",
                       f.px(pt.x), f.py(pt.y), svg_escape(s.color), svg_escape(s.name + (pt.label.empty() ? "" : " " + pt.label)),
                       pt.y);
    if (!pt.label.empty())
      svg += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="10" fill="#555">{}</text>)" "\n", f.px(pt.x) + 5,
                         f.py(pt.y) - 6, svg_escape(pt.label));
  }
}

void draw_legend(const ChartPanel& p, const Frame& f, std::string& svg) {
  double x = f.x0;
  const double y = f.y0 + f.h + kBottom;
  for (const auto& s : p.series) {
    svg += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="{}" stroke-width="2"{}/>)" "\n", x,
                       y - 4, x + 18, y - 4, svg_escape(s.color), s.dashed ? R"( stroke-dasharray="6 4")" : "");
    svg += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="11">{}</text>)" "\n", x + 22, y, svg_escape(s.name));
    x += 34 + 6.5 * double(s.name.size());
  }
}

}  // namespace

std::string svg_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::vector<double> nice_ticks(double lo, double hi, int count) {
  if (!(hi > lo) || count < 1) return {lo};
  const double raw = (hi - lo) / count, mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> ticks;
  const double first = std::ceil(lo / step - 1e-9), last = std::floor(hi / step + 1e-9);
  for (double k = first; k <= last; ++k) ticks.push_back(k == 0 ? 0.0 : k * step);  // k * step: no drift
  return ticks;
}

std::string render_svg(const std::vector<ChartPanel>& panels, const std::string& title, int panel_width,
                       int panel_height) {
  const int width = panel_width * std::max<int>(1, int(panels.size())), height = panel_height + 28;
  std::string svg = fmt::format(
      R"(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" viewBox="0 0 {} {}" font-family="sans-serif">)" "\n",
      width, height, width, height);
  svg += fmt::format(R"(<rect width="{}" height="{}" fill="white"/>)" "\n", width, height);
  svg += fmt::format(R"(<text x="{}" y="20" text-anchor="middle" font-size="15">{}</text>)" "\n", width / 2,
                     svg_escape(title));
  for (size_t i = 0; i < panels.size(); ++i) {
    svg += fmt::format(R"~(<g transform="translate({} 28)">)~" "\n", int(i) * panel_width);
    const Frame f = make_frame(panels[i], panel_width, panel_height);
    draw_axes(panels[i], f, svg);
    for (const auto& s : panels[i].series) draw_series(s, f, svg);
    draw_legend(panels[i], f, svg);
    svg += "</g>\n";
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace quantlab::analysis
