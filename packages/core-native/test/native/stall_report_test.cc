// The stall report: a name some ranks hold and others do not is reported once, naming the ranks
// that lack it, after the warning time; again only if it stalls anew.
#include <gtest/gtest.h>

#include "engine/stall_report.h"

namespace unicc {
namespace {

TEST(StallReport, ReportsOnceAfterTheWarningTimeNamingTheMissingRanks) {
  StallReport stalls(4, 2);
  const std::map<std::string, std::vector<int>> late = {{"late", {0, 2}}};
  EXPECT_EQ(stalls.update(late, 10'000), "");
  EXPECT_EQ(stalls.update(late, 11'999), "");
  const std::string report = stalls.update(late, 12'000);
  EXPECT_EQ(report,
            "stall: for over 2 s some ranks submitted these tensors and others did not (a rank skipped a gradient, "
            "or is much slower):\n  'late' missing on ranks 1,3");
  EXPECT_EQ(stalls.update(late, 20'000), "");  // once
  EXPECT_EQ(stalls.update({}, 21'000), "");    // every rank holds it now (or none)
  EXPECT_EQ(stalls.update(late, 22'000), "");  // stalled anew: the clock starts again
  EXPECT_NE(stalls.update(late, 24'000).find("'late' missing on ranks 1,3"), std::string::npos);
}

TEST(StallReport, ListsEightNamesAndCountsTheRest) {
  StallReport stalls(2, 1);
  std::map<std::string, std::vector<int>> held;
  for (int i = 0; i < 11; ++i) held["t" + std::to_string(i)] = {1};
  EXPECT_EQ(stalls.update(held, 0), "");
  const std::string report = stalls.update(held, 1000);
  EXPECT_NE(report.find("'t0' missing on ranks 0"), std::string::npos);
  EXPECT_EQ(report.find("'t9'"), std::string::npos);
  EXPECT_NE(report.find("... and 3 more"), std::string::npos) << report;
  EXPECT_EQ(stalls.update(held, 2000), "");
}

}  // namespace
}  // namespace unicc
