// quantlab suite-size --baseline-acc P --drop D [--alpha A] [--power B] [--discordance R] [--json]
// How many queries a paired suite needs for the exact McNemar test to detect a drop of D accuracy
// points (eval/suite_size.h; the formula and its sources: docs/criteria.md). P, D and R in percent.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/commands.h"
#include "eval/suite_size.h"

namespace quantlab::cli {

namespace {

struct SuiteSizeArgs {
  double baseline_acc = 0, drop = 0, alpha = 0.05, power = 0.8, discordance = 0;
  bool json = false;
};

void run_suite_size(const SuiteSizeArgs& a) {
  eval::SuiteSizeRequest r{a.baseline_acc, a.drop, a.alpha, a.power, std::nullopt};
  if (a.discordance != 0) r.discordance_pct = a.discordance;
  const eval::SuiteSize s = eval::suite_size(r);
  if (a.json) {
    fmt::print("{}\n", nlohmann::ordered_json{{"queries", s.queries},
                                              {"power", s.power},
                                              {"baseline_accuracy_pct", a.baseline_acc},
                                              {"drop_pct", a.drop},
                                              {"discordance_pct", s.discordance_pct},
                                              {"lost_pct", s.lost_pct},
                                              {"gained_pct", s.gained_pct},
                                              {"alpha", a.alpha},
                                              {"target_power", a.power},
                                              {"normal_approximation", s.normal_approximation}}
                           .dump(2));
    return;
  }
  fmt::print("{} queries detect a drop of {:g} points from {:g} % with power {:.3f} (target {:g}; exact McNemar, "
             "two-sided alpha {:g})\n",
             s.queries, a.drop, a.baseline_acc, s.power, a.power, a.alpha);
  fmt::print("assumed: {:g} % of the queries flip ({:g} % lost, {:g} % gained){}\n", s.discordance_pct, s.lost_pct,
             s.gained_pct,
             r.discordance_pct ? "" : "; every flip a loss, the fewest queries (pass --discordance for more flips)");
  fmt::print("normal approximation (Connor 1987): {} queries\n", s.normal_approximation);
}

}  // namespace

void register_suite_size(CLI::App& app) {
  auto a = std::make_shared<SuiteSizeArgs>();
  auto* cmd = app.add_subcommand("suite-size", "Queries a paired suite needs to detect an accuracy drop");
  cmd->add_option("--baseline-acc", a->baseline_acc, "The baseline's accuracy on the suite, percent")->required();
  cmd->add_option("--drop", a->drop, "The drop to detect, accuracy points")->required();
  cmd->add_option("--alpha", a->alpha, "Two-sided level of the exact McNemar test")->capture_default_str();
  cmd->add_option("--power", a->power, "Probability of detecting the drop")->capture_default_str();
  cmd->add_option("--discordance", a->discordance,
                  "Percent of the queries whose outcome flips either way (default: the drop: every flip a loss)");
  cmd->add_flag("--json", a->json, "Print JSON");
  cmd->callback([a] { run_suite_size(*a); });
}

}  // namespace quantlab::cli
