// Ring balance over a simulated split: 2 hosts x 2 ranks, part = local rank. The weights move
// halfway toward the parts' mean measured rates once every rank reported, never below a quarter
// of an equal share; pinned weights stay.
#include <gtest/gtest.h>

#include "common/error.h"
#include "engine/balance.h"

namespace unicc {
namespace {

struct FakeSplit {
  std::vector<double> weights;
  Split::Use use;
  Split make() {
    Split s;
    s.parts = 2;
    s.part_of = [](int rank) { return static_cast<size_t>(rank % 2); };
    s.take_use = [this] { return std::exchange(use, {}); };
    s.set_weights = [this](const std::vector<double>& w) { weights = w; };
    return s;
  }
};

TEST(Balancer, MovesHalfwayTowardTheMeasuredRates) {
  FakeSplit split;
  Balancer b(split.make(), {}, true);
  EXPECT_TRUE(b.balancing());
  EXPECT_EQ(split.weights, (std::vector<double>{0.5, 0.5}));
  b.reported({-1, 2e8, 2e8, 2e8});  // rank 0 reported nothing: no move
  EXPECT_EQ(b.shares(), (std::vector<double>{0.5, 0.5}));
  // Part 0 (ranks 0, 2) at a mean 3e8, part 1 at 1e8: the target is 75/25, halfway 62.5/37.5.
  b.reported({2e8, 1e8, 4e8, 1e8});
  EXPECT_DOUBLE_EQ(b.shares()[0], 0.625);
  EXPECT_DOUBLE_EQ(split.weights[1], 0.375);
  EXPECT_EQ(b.str(), "local ranks' shares 63/38 % (balanced)");
  for (int i = 0; i < 20; ++i) b.reported({1e9, 1, 1e9, 1});
  // Held at the floor (a quarter of 50 %), a little under it once the weights are renormalised.
  EXPECT_GT(b.shares()[1], 0.11);
  EXPECT_LT(b.shares()[1], 0.125);
}

TEST(Balancer, ReportsARateOncePerWindow) {
  FakeSplit split;
  Balancer b(split.make(), {}, true);
  split.use = {30e6, 0.1};
  EXPECT_EQ(b.measured(40e6), -1);  // the window is 64 MB of batches
  split.use = {30e6, 0.2};
  EXPECT_DOUBLE_EQ(b.measured(40e6), 60e6 / 0.3);
  split.use = {1e6, 1};
  EXPECT_EQ(b.measured(1e6), -1);  // a new window
}

TEST(Balancer, PinnedWeightsStayAndAWrongCountSaysWhatToGive) {
  FakeSplit split;
  Balancer b(split.make(), {3, 1}, true);
  EXPECT_FALSE(b.balancing());
  EXPECT_EQ(split.weights, (std::vector<double>{0.75, 0.25}));
  EXPECT_EQ(b.str(), "local ranks' shares 75/25 % (fixed)");
  try {
    Balancer wrong(split.make(), {1, 1, 1}, true);
    FAIL() << "no error";
  } catch (const CommError& e) {
    EXPECT_NE(std::string(e.what()).find("UNICC_HOST_SHARES gives 3 shares, but every host runs 2 ranks"), std::string::npos);
  }
  Balancer none(Split{}, {1, 1, 1}, true);  // nothing split: nothing to check
  EXPECT_FALSE(none.splits());
}

}  // namespace
}  // namespace unicc
