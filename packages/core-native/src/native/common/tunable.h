#pragma once
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace unicc {

// A setting a tuner may choose: how to show, read and apply a value, and which to try. The layer
// that owns the setting registers it (the communicator its stream count and piece size, the engine
// its fusion size), so the tuner knows none of their internals.
struct Tunable {
  std::function<std::string(size_t)> show;  // e.g. "4 streams"
  std::function<size_t()> get;
  std::function<void(size_t)> set;  // between collectives, at the same point on every rank
  std::vector<size_t> tries;        // values to try besides the configured one
  // Whether running with `value` instead of `base` could change the work the tuner has just
  // measured (a fusion size cannot, for batches it would group alike); values that cannot are
  // not tried, so noise cannot pick them. Empty: every value could. It must answer alike on
  // every rank.
  std::function<bool(size_t value, size_t base)> matters;
};

// Work that is split among parts running side by side at rates of their own (where ranks share
// hosts: each local rank's block of an allreduce crosses hosts on its own ring), which a balancer
// may move between collectives. Each rank measures the part it runs.
struct Split {
  struct Use {
    double bytes = 0, seconds = 0;
  };
  size_t parts = 0;                                               // 0: nothing is split
  std::function<size_t(int rank)> part_of;                        // the part a rank runs
  std::function<Use()> take_use;                                  // this rank's part since the last call
  std::function<void(const std::vector<double>& weights)> set_weights;  // the same on every rank
};

}  // namespace unicc
