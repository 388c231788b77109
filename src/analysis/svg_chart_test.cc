#include "analysis/svg_chart.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <regex>

namespace quantlab::analysis {
namespace {

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

TEST(NiceTicks, StepsOfOneTwoOrFiveCoveringTheRange) {
  EXPECT_EQ(nice_ticks(0, 100, 5), (std::vector<double>{0, 20, 40, 60, 80, 100}));
  EXPECT_EQ(nice_ticks(2.6, 8.4, 5), (std::vector<double>{4, 6, 8}));
  EXPECT_EQ(nice_ticks(2.6, 8.4, 8), (std::vector<double>{3, 4, 5, 6, 7, 8}));
  const auto big = nice_ticks(1.2e9, 6.1e9, 5);
  EXPECT_EQ(big.front(), 2e9);
  EXPECT_EQ(big.back(), 6e9);
  EXPECT_EQ(nice_ticks(5, 5), std::vector<double>{5});
}

TEST(SvgEscape, EscapesMarkup) { EXPECT_EQ(svg_escape(R"(a<b & "c">)"), "a&lt;b &amp; &quot;c&quot;&gt;"); }

ChartPanel accuracy_panel() {
  ChartPanel p;
  p.title = "Accuracy vs bits";
  p.x_label = "bits";
  p.y_label = "%";
  p.x_reversed = true;
  p.y_guides = {80};
  p.series.push_back({"accuracy", "#1f77b4", {{8, 100, "8-bit"}, {6, 100, "6-bit"}, {4, 60, "4-bit"}}, false});
  p.series.push_back({"retention <weights>", "#ff7f0e",
                      {{8, 99, ""}, {6, std::numeric_limits<double>::quiet_NaN(), ""}, {4, 40, ""}}, true});
  return p;
}

TEST(RenderSvg, DrawsEveryPointLineAndLabel) {
  const std::string svg = render_svg({accuracy_panel(), accuracy_panel()}, "sweep & co");
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_EQ(count(svg, "<polyline"), 4u);  // two series per panel
  EXPECT_EQ(count(svg, "<circle"), 10u);   // the NaN point is skipped
  EXPECT_EQ(count(svg, "<g transform"), 2u);
  EXPECT_NE(svg.find("sweep &amp; co"), std::string::npos);
  EXPECT_NE(svg.find("retention &lt;weights&gt;"), std::string::npos);
  EXPECT_EQ(count(svg, "stroke=\"#c33\""), 2u);  // the 80 % guide in each panel
  EXPECT_EQ(render_svg({accuracy_panel()}, "t"), render_svg({accuracy_panel()}, "t"));  // deterministic
}

TEST(RenderSvg, ReversedAxisPutsHigherBitsOnTheLeft) {
  const std::string svg = render_svg({accuracy_panel()}, "t");
  const std::regex circle(R"re(<circle cx="([0-9.]+)" cy="([0-9.]+)")re");
  std::vector<double> xs, ys;
  for (std::sregex_iterator it(svg.begin(), svg.end(), circle), end; it != end; ++it) {
    xs.push_back(std::stod((*it)[1]));
    ys.push_back(std::stod((*it)[2]));
  }
  ASSERT_GE(xs.size(), 3u);
  EXPECT_LT(xs[0], xs[1]);  // 8 bits left of 6 bits
  EXPECT_LT(xs[1], xs[2]);
  EXPECT_DOUBLE_EQ(ys[0], ys[1]);  // both 100 %
  EXPECT_GT(ys[2], ys[0]);         // 60 % is lower on the page (larger y)
}

}  // namespace
}  // namespace quantlab::analysis
