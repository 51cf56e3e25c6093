// The tuner's registry: each tunable's values are tried with the best found for those before it,
// the configured values are kept unless beaten by the margin, and the best ends applied.
#include <gtest/gtest.h>

#include <map>

#include "engine/tuner.h"

namespace unicc {
namespace {

TEST(Tuner, TriesEachTunableWithTheBestBeforeItAndKeepsTheBest) {
  size_t a = 4, b = 64;
  Tuner t;
  t.add({[](size_t v) { return "a" + std::to_string(v); }, [&] { return a; }, [&](size_t v) { a = v; }, {1, 2}});
  t.add({[](size_t v) { return "b" + std::to_string(v); }, [&] { return b; }, [&](size_t v) { b = v; }, {16, 64}});
  // Rates by setting: a=2 is best for a; then b=16 wins with a=2.
  std::map<std::pair<size_t, size_t>, double> rate = {{{4, 64}, 100e6}, {{1, 64}, 50e6}, {{2, 64}, 120e6}, {{2, 16}, 130e6}};
  t.start(1.1);
  std::vector<std::pair<size_t, size_t>> tried;
  while (t.active()) {
    tried.push_back({a, b});
    t.measured(rate.at({a, b}));
  }
  const std::vector<std::pair<size_t, size_t>> want = {{4, 64}, {1, 64}, {2, 64}, {2, 16}};
  EXPECT_EQ(tried, want);  // b=64 is not tried again: it is the value already measured
  EXPECT_EQ(a, 2u);
  EXPECT_EQ(b, 16u);
  EXPECT_EQ(t.current(), "a2, b16");
  EXPECT_EQ(t.report(), "a2, b16 (measured a4, b64: 100 MB/s; a1, b64: 50 MB/s; a2, b64: 120 MB/s; a2, b16: 130 MB/s)");
}

TEST(Tuner, TheConfiguredValuesStayUnlessBeatenByTheMargin) {
  size_t a = 4;
  Tuner t;
  t.add({[](size_t v) { return std::to_string(v); }, [&] { return a; }, [&](size_t v) { a = v; }, {1}});
  t.start(1.1);
  t.measured(100e6);
  ASSERT_TRUE(t.active());
  EXPECT_EQ(a, 1u);
  t.measured(105e6);  // faster, but by less than 10 %
  EXPECT_FALSE(t.active());
  EXPECT_EQ(a, 4u);
}

// A value that could not change what was measured is not run, so noise cannot choose it.
TEST(Tuner, ValuesThatCannotChangeTheWorkAreNotTried) {
  size_t a = 4, b = 64;
  std::vector<std::pair<size_t, size_t>> asked;  // (value, base) of b
  Tuner t;
  t.add({[](size_t v) { return "a" + std::to_string(v); }, [&] { return a; }, [&](size_t v) { a = v; }, {1}});
  t.add({[](size_t v) { return "b" + std::to_string(v); }, [&] { return b; }, [&](size_t v) { b = v; }, {4, 16},
         [&](size_t v, size_t base) {
           asked.push_back({v, base});
           return v == 4;  // b16 would do what b64 does
         }});
  t.start(1.1);
  std::vector<std::pair<size_t, size_t>> tried;
  while (t.active()) {
    tried.push_back({a, b});
    t.measured(tried.size() == 3 ? 90e6 : 100e6);
  }
  const std::vector<std::pair<size_t, size_t>> want = {{4, 64}, {1, 64}, {4, 4}};
  EXPECT_EQ(tried, want);
  const std::vector<std::pair<size_t, size_t>> want_asked = {{4, 64}, {16, 64}};
  EXPECT_EQ(asked, want_asked);
  EXPECT_EQ(a, 4u);
  EXPECT_EQ(b, 64u);
  EXPECT_EQ(t.report(), "a4, b64 (measured a4, b64: 100 MB/s; a1, b64: 100 MB/s; a4, b4: 90 MB/s)");
}

}  // namespace
}  // namespace unicc
