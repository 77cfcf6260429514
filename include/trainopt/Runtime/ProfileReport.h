//===- ProfileReport.h - the table of trainopt-run --profile ----*- C++ -*-===//
//
/// \file
/// The per-entry-point table `--profile` prints, shared by the CPU and CUDA
/// devices: the time by kind of command (kernels, each library function,
/// copies, fills), then the costliest commands. Header-only: the CUDA
/// runtime links nothing of the CPU one.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_RUNTIME_PROFILEREPORT_H
#define TRAINOPT_RUNTIME_PROFILEREPORT_H

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace trainopt::rt {

/// One command's accumulated time.
struct ProfiledCommand {
  const std::string *what; ///< "kernel k", "library call f [...]", "copy ..."
  double ms;               ///< summed over `runs`
};

/// The lines after an entry point's heading: time per run by kind of
/// command, then the `top` costliest commands. `total` is the sum of the
/// commands' times.
inline std::string profileTable(std::vector<ProfiledCommand> cmds, double total,
                                int64_t runs, size_t top = 25) {
  double perRun = 1.0 / static_cast<double>(std::max<int64_t>(runs, 1));
  std::map<std::string, std::pair<double, int>> byKind;
  for (const ProfiledCommand &c : cmds) {
    const std::string &what = *c.what;
    size_t end = what.find(' ');
    if (what.compare(0, end, "library") == 0) // "library call FUNCTION [...]"
      end = what.find(' ', sizeof "library call");
    auto &[ms, count] = byKind[what.substr(0, end)];
    ms += c.ms;
    ++count;
  }
  std::vector<std::pair<std::string, std::pair<double, int>>> kinds(
      byKind.begin(), byKind.end());
  std::stable_sort(kinds.begin(), kinds.end(),
                   [](const auto &a, const auto &b) {
                     return a.second.first > b.second.first;
                   });
  std::stable_sort(cmds.begin(), cmds.end(),
                   [](const ProfiledCommand &a, const ProfiledCommand &b) {
                     return a.ms > b.ms;
                   });
  std::string out = "  by kind:\n";
  char line[512];
  for (const auto &[kind, stats] : kinds) {
    std::snprintf(line, sizeof line, "  %6.1f%%  %8.3f ms  %5d x %s\n",
                  100.0 * stats.first / total, stats.first * perRun,
                  stats.second, kind.c_str());
    out += line;
  }
  out += "  costliest commands:\n";
  for (size_t i = 0; i < cmds.size() && i < top; ++i) {
    std::snprintf(line, sizeof line, "  %6.1f%%  %8.3f ms  %s\n",
                  100.0 * cmds[i].ms / total, cmds[i].ms * perRun,
                  cmds[i].what->c_str());
    out += line;
  }
  return out;
}

} // namespace trainopt::rt

#endif // TRAINOPT_RUNTIME_PROFILEREPORT_H
