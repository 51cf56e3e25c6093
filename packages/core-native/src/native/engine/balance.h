#pragma once
#include <string>
#include <vector>

#include "common/tunable.h"

namespace unicc {

// Moves a split's weights toward its parts' measured rates, so that the parts (the rings of a
// host's ranks, which get unequal shares of the network where it caps each TCP flow) finish
// together. Every rank reports its part's rate over a window of the same byte count; from the
// same reports every rank moves the weights the same way.
class Balancer {
 public:
  // `pinned`: fixed weights, one per part (empty: equal weights, balanced if `balance`).
  Balancer(Split split, const std::vector<double>& pinned, bool balance);
  bool splits() const { return split_.parts > 0; }
  bool balancing() const { return balancing_; }
  // After each batch of `bytes` (the same on every rank): this rank's part's rate over the window
  // that just ended, to report to the others, or -1.
  double measured(double bytes);
  // With every rank's report (by rank, -1: none): moves the weights once every rank has reported.
  void reported(const std::vector<double>& rate_by_rank);
  const std::vector<double>& shares() const { return shares_; }  // by part, summing to 1
  std::string str() const;  // e.g. "local ranks' shares 65/35 % (balanced)"

 private:
  void set(std::vector<double> weights);

  Split split_;
  bool balancing_;
  std::vector<double> shares_;
  double window_bytes_ = 0;
  Split::Use use_;
};

}  // namespace unicc
