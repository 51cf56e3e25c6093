#include "engine/tuner.h"

namespace unicc {

void Tuner::start(double margin) {
  margin_ = margin;
  Values configured;
  for (const Tunable& t : tunables_) configured.push_back(t.get());
  candidates_ = {configured};
  if (!tunables_.empty()) add_candidates(0, configured);
  rates_.assign(candidates_.size(), 0);
  apply(configured);
}

void Tuner::add_candidates(size_t tunable, const Values& base) {
  const Tunable& t = tunables_[tunable];
  for (size_t v : t.tries) {
    if (v == base[tunable] || (t.matters && !t.matters(v, base[tunable]))) continue;
    Values c = base;
    c[tunable] = v;
    candidates_.push_back(c);
    rates_.push_back(0);
  }
}

Tuner::Values Tuner::best() const {
  size_t b = 0;
  for (size_t i = 1; i < candidates_.size(); ++i)
    if (rates_[i] > rates_[b] * (b == 0 ? margin_ : 1.0)) b = i;
  return candidates_[b];
}

void Tuner::apply(const Values& v) {
  for (size_t i = 0; i < tunables_.size(); ++i) tunables_[i].set(v[i]);
}

void Tuner::measured(double rate) {
  rates_[next_++] = rate;
  // A tunable's values are all in: try the next tunable's with the best so far.
  while (next_ == candidates_.size() && tunable_ + 1 < tunables_.size()) add_candidates(++tunable_, best());
  apply(active() ? candidates_[next_] : best());
}

std::string Tuner::show(const Values& v) const {
  std::string s;
  for (size_t i = 0; i < tunables_.size(); ++i) s += (i ? ", " : "") + tunables_[i].show(v[i]);
  return s;
}

std::string Tuner::current() const {
  Values v;
  for (const Tunable& t : tunables_) v.push_back(t.get());
  return show(v);
}

std::string Tuner::report() const {
  std::string rates;
  for (size_t i = 0; i < candidates_.size(); ++i)
    rates += (i ? "; " : "") + show(candidates_[i]) + ": " + std::to_string(static_cast<int>(rates_[i] / 1e6)) + " MB/s";
  return show(best()) + " (measured " + rates + ")";
}

}  // namespace unicc
