#pragma once
#include <string>
#include <vector>

#include "common/tunable.h"

namespace unicc {

// Tries the registered tunables one after another, each one's values with the best found so far
// for those before it, and keeps the best. The rates it is given are the same on every rank (the
// ranks' mean), so every rank chooses alike. Not thread-safe: the engine locks around it.
class Tuner {
 public:
  void add(Tunable t) { tunables_.push_back(std::move(t)); }
  // Measures the configured values first (the others must beat them by `margin` to replace them).
  void start(double margin);
  bool active() const { return next_ < candidates_.size(); }
  // The rate of the candidate just measured; applies the next one, or the best once all are in.
  void measured(double rate);
  std::string current() const;  // the tunables' values now, e.g. "4 streams, fusion 65536 KiB"
  std::string report() const;   // what it chose and every rate, once done

 private:
  using Values = std::vector<size_t>;
  void add_candidates(size_t tunable, const Values& base);
  Values best() const;
  void apply(const Values& v);
  std::string show(const Values& v) const;

  std::vector<Tunable> tunables_;
  std::vector<Values> candidates_;
  std::vector<double> rates_;
  size_t next_ = 0, tunable_ = 0;
  double margin_ = 1;
};

}  // namespace unicc
