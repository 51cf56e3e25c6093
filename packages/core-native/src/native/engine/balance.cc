#include "engine/balance.h"

#include <algorithm>

#include "common/error.h"

namespace unicc {

namespace {
// Rates are compared over windows of this many bytes reduced (the same count on every rank,
// whatever its share), and the split moves halfway to the measured rates each time, keeping every
// part at least a quarter of an equal share.
constexpr double kWindowBytes = 64e6, kDamping = 0.5, kMinShareOfEqual = 0.25;
}  // namespace

Balancer::Balancer(Split split, const std::vector<double>& pinned, bool balance)
    : split_(std::move(split)), balancing_(balance && pinned.empty() && split_.parts > 0) {
  if (split_.parts == 0) return;
  if (!pinned.empty() && pinned.size() != split_.parts)
    throw CommError("UNICC_HOST_SHARES gives " + std::to_string(pinned.size()) + " shares, but every host runs " +
                    std::to_string(split_.parts) + " ranks: give one weight per rank of a host, or 'auto' or 'even'");
  set(pinned.empty() ? std::vector<double>(split_.parts, 1.0) : pinned);
}

double Balancer::measured(double bytes) {
  const Split::Use use = split_.take_use();
  use_.bytes += use.bytes;
  use_.seconds += use.seconds;
  window_bytes_ += bytes;
  if (window_bytes_ < kWindowBytes) return -1;
  const double rate = use_.seconds > 0 ? use_.bytes / use_.seconds : -1;
  window_bytes_ = 0;
  use_ = {};
  return rate;
}

void Balancer::reported(const std::vector<double>& rate_by_rank) {
  const size_t P = split_.parts;
  std::vector<double> rate(P, 0);
  std::vector<int> ranks(P, 0);
  for (size_t r = 0; r < rate_by_rank.size(); ++r) {
    if (!(rate_by_rank[r] > 0)) return;  // no window ended (or nothing measured) on some rank
    const size_t p = split_.part_of(static_cast<int>(r));
    rate[p] += rate_by_rank[r];
    ++ranks[p];
  }
  // Shares in proportion to rates would let every part finish together at these rates.
  double total_rate = 0;
  for (size_t p = 0; p < P; ++p) total_rate += rate[p] /= ranks[p];
  std::vector<double> shares(P);
  for (size_t p = 0; p < P; ++p)
    shares[p] = std::max(kMinShareOfEqual / P, (1 - kDamping) * shares_[p] + kDamping * rate[p] / total_rate);
  set(std::move(shares));
}

void Balancer::set(std::vector<double> weights) {
  double total = 0;
  for (double w : weights) total += w;
  for (double& w : weights) w /= total;
  split_.set_weights(weights);
  shares_ = std::move(weights);
}

std::string Balancer::str() const {
  std::string s = "local ranks' shares";
  for (size_t p = 0; p < shares_.size(); ++p) s += (p ? "/" : " ") + std::to_string(static_cast<int>(shares_[p] * 100 + 0.5));
  return s + (balancing_ ? " % (balanced)" : " % (fixed)");
}

}  // namespace unicc
