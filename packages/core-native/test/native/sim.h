#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "algorithms/schedule.h"
#include "reduce/reduce.h"
#include "reduce/wire16.h"

namespace unicc::test {

// Runs one schedule per simulated rank in memory, in a random order that respects what a real
// executor promises and nothing more: a step waits for its dependencies and its gate (gates open
// in order, at random moments); a ready send may start before earlier ones to the same peer; it reads its bytes at any moment until it completes
// (so a receive that writes them meanwhile is a hazard, reported), and its message arrives only
// after that; a message is applied once it arrived and the receive's dependencies are done.
// Returns "" or what went wrong.
std::string simulate(const std::vector<Schedule>& schedules, std::vector<std::vector<char>>& buffers, DType t,
                     RedOp op, Wire wire, uint64_t seed);

}  // namespace unicc::test
