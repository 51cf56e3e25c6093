// World formation (world/formation.h) for ranks that are threads of this test, through a store in
// memory: lanes meet their own lanes, ranks find their hosts (given, or by probing /dev/shm),
// leave no shared-memory names or probe files behind, and a rank that never comes is an error
// naming what the others waited for, within the timeout.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "job.h"

namespace unicc {
namespace {

struct Ranks {
  std::vector<std::vector<std::unique_ptr<Communicator>>> lanes;  // [rank][lane]
  Ranks(int n, int lanes_per_rank, const std::string& job_id) : lanes(n) {
    for (int r = 0; r < n; ++r)
      for (int l = 0; l < lanes_per_rank; ++l) {
        Options o;
        o.rank = r;
        o.size = n;
        o.job_id = job_id + "-" + std::to_string(l);
        o.token = "world-test";
        o.timeout_ms = 10000;
        lanes[r].push_back(std::make_unique<Communicator>(o));
      }
  }
  std::vector<std::vector<Communicator*>> all() const {
    std::vector<std::vector<Communicator*>> out(lanes.size());
    for (size_t r = 0; r < lanes.size(); ++r)
      for (const auto& c : lanes[r]) out[r].push_back(c.get());
    return out;
  }
};

std::string job_id(const char* what) { return std::string("world-test-") + what + "-" + std::to_string(getpid()); }

bool exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

// Every rank's allreduce (max: exact whatever the order) on lane l of each rank; each one's error.
std::vector<std::string> allreduce_max(const Ranks& ranks, size_t lane, std::vector<std::vector<float>>& bufs) {
  std::vector<Communicator*> comms;
  for (const auto& of_rank : ranks.lanes) comms.push_back(of_rank[lane].get());
  return test::run_on(comms, [&bufs](int r) {
    Op op;
    op.coll = Coll::Allreduce;
    op.op = RedOp::Max;
    op.count = bufs[r].size();
    op.buf = bufs[r].data();
    return op;
  });
}

TEST(World, LanesOfRanksOnTwoHostsFormThroughTheStoreAndEachCarriesCollectives) {
  const Ranks ranks(4, 2, job_id("two-hosts"));
  ASSERT_EQ(test::form_ranks(ranks.all(), {"host-a", "host-a", "host-b", "host-b"}, "", 10000), std::vector<std::string>(4));
  for (int r = 0; r < 4; ++r)
    for (const auto& lane : ranks.lanes[r]) {
      const Topology& t = lane->topology();
      EXPECT_EQ(t.num_hosts, 2);
      EXPECT_EQ(t.local_size, 2);
      EXPECT_EQ(t.local_rank, r % 2);
      EXPECT_EQ(t.host_index, r / 2);
      EXPECT_TRUE(t.hierarchical);
      EXPECT_FALSE(exists("/dev/shm/" + lane->shm_name())) << "shared memory left named after formation";
    }
  for (size_t l = 0; l < 2; ++l) {
    std::vector<std::vector<float>> bufs;
    for (uint64_t r = 0; r < 4; ++r) bufs.push_back(test::random_floats(70001, 10 * l + r));
    std::vector<float> want = bufs[0];
    for (const auto& b : bufs)
      for (size_t i = 0; i < want.size(); ++i) want[i] = std::max(want[i], b[i]);
    ASSERT_EQ(allreduce_max(ranks, l, bufs), std::vector<std::string>(4)) << "lane " << l;
    for (const auto& b : bufs) EXPECT_EQ(b, want) << "lane " << l;
  }
}

// Threads of one process share /dev/shm: one host, named as the machine is (no other host has
// its name); the probes go once every rank has read them.
TEST(World, RanksThatShareDevShmFindOneHostByProbing) {
  const Ranks ranks(3, 1, job_id("probe"));
  const std::string prefix = "unicc-" + job_id("probe");
  ASSERT_EQ(test::form_ranks(ranks.all(), {}, prefix, 10000), std::vector<std::string>(3));
  char name[256] = {};
  ASSERT_EQ(gethostname(name, sizeof name - 1), 0);
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(ranks.lanes[r][0]->topology().local_size, 3);
    EXPECT_EQ(ranks.lanes[r][0]->topology().local_rank, r);
    EXPECT_EQ(ranks.lanes[r][0]->peers()[r].host, name);
    EXPECT_FALSE(exists("/dev/shm/" + prefix + "-probe-" + std::to_string(r))) << "probe file of rank " << r << " left";
  }
  std::vector<std::vector<float>> bufs;
  for (uint64_t r = 0; r < 3; ++r) bufs.push_back(test::random_floats(1001, r));
  ASSERT_EQ(allreduce_max(ranks, 0, bufs), std::vector<std::string>(3));
  EXPECT_EQ(bufs[0], bufs[2]);
}

TEST(World, ARankThatNeverComesIsAnErrorNamingWhatTheOthersWaitedForNotAHang) {
  const Ranks ranks(3, 1, job_id("absent"));
  const auto errors = test::form_ranks(ranks.all(), {"a", "b", "c"}, "", 300, {2});
  ASSERT_EQ(errors.size(), 2u);
  for (const std::string& e : errors) EXPECT_NE(e.find("'w/peer/2'"), std::string::npos) << e;
}

// A rank's record is newline-separated (formation.cc): a host identity holding one is refused by
// name on its rank, and the others fail naming the record they waited for.
TEST(World, AHostIdentityWithANewlineIsRefusedNamingIt) {
  const Ranks ranks(2, 1, job_id("newline"));
  const auto errors = test::form_ranks(ranks.all(), {"rack1\nnode", "b"}, "", 300);
  EXPECT_NE(errors[0].find("holds a newline (UNICC_HOST_ID?)"), std::string::npos) << errors[0];
  EXPECT_NE(errors[1].find("'w/peer/0'"), std::string::npos) << errors[1];
}

}  // namespace
}  // namespace unicc
