#include "world/formation.h"

#include <unistd.h>

#include <future>
#include <memory>
#include <sstream>

#include "common/error.h"
#include "world/host_probe.h"

namespace unicc {
namespace {

// A rank's record in the store: its host, address and pid, then its lanes' ports, one per line.
std::string record(const std::string& host, const std::string& addr, const std::vector<int>& ports) {
  if (host.find('\n') != std::string::npos) throw CommError("the host identity '" + host + "' holds a newline (UNICC_HOST_ID?)");
  std::string r = host + "\n" + addr + "\n" + std::to_string(getpid());
  for (int p : ports) r += "\n" + std::to_string(p);
  return r;
}

std::vector<PeerInfo> parse(const std::string& value, int rank, size_t lanes) {
  std::istringstream in(value);
  std::string host, addr, line;
  std::getline(in, host);
  std::getline(in, addr);
  std::vector<int> numbers;
  while (std::getline(in, line)) numbers.push_back(std::atoi(line.c_str()));
  if (numbers.size() != 1 + lanes)
    throw CommError("rank " + std::to_string(rank) + "'s record in the store has " + std::to_string(numbers.size()) +
                    " numbers, not " + std::to_string(1 + lanes) + ": is every rank the same unicc version?");
  std::vector<PeerInfo> by_lane;
  for (size_t l = 0; l < lanes; ++l) by_lane.push_back({host, addr, numbers[1 + l], numbers[0]});
  return by_lane;
}

// The first rank of a host makes the segments; once all have mapped them, their names go away.
void share_memory(RendezvousStore& store, const Formation& f, const std::vector<Communicator*>& lanes) {
  const Topology& t = lanes[0]->topology();
  const std::string made = f.key_prefix + "shm-made/" + std::to_string(t.host_index);
  const auto mapped = [&](int local_rank) {
    return f.key_prefix + "shm-mapped/" + std::to_string(t.host_index) + "/" + std::to_string(local_rank);
  };
  if (t.local_rank == 0) {
    for (Communicator* c : lanes) c->open_shm(true);
    store.set(made, "1");
    for (int lr = 1; lr < t.local_size; ++lr) store.get(mapped(lr), f.timeout_ms);
    for (Communicator* c : lanes) c->unlink_shm();
  } else {
    store.get(made, f.timeout_ms);
    for (Communicator* c : lanes) c->open_shm(false);
    store.set(mapped(t.local_rank), "1");
  }
}

// Every lane dials and accepts at once: each waits on its own peers.
void connect_all(const std::vector<Communicator*>& lanes) {
  std::vector<std::future<void>> others;
  for (size_t l = 1; l < lanes.size(); ++l) others.push_back(std::async(std::launch::async, [c = lanes[l]] { c->connect(); }));
  std::exception_ptr first;
  try {
    lanes[0]->connect();
  } catch (...) {
    first = std::current_exception();
  }
  for (auto& o : others) {
    try {
      o.get();
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  }
  if (first) std::rethrow_exception(first);
}

}  // namespace

const Topology& form_world(RendezvousStore& store, const Formation& f, const std::vector<Communicator*>& lanes) {
  const Options& o = lanes.at(0)->options();
  std::unique_ptr<HostProbe> probe;
  if (f.host_id.empty()) probe = std::make_unique<HostProbe>(store, f.key_prefix, o.rank, o.size, f.probe_prefix, f.timeout_ms);
  std::vector<int> ports;
  for (Communicator* c : lanes) ports.push_back(c->listen(f.addr));
  store.set(f.key_prefix + "peer/" + std::to_string(o.rank), record(probe ? probe->host_id() : f.host_id, f.addr, ports));
  std::vector<std::vector<PeerInfo>> peers(lanes.size());
  for (int r = 0; r < o.size; ++r) {
    const std::vector<PeerInfo> of_rank = parse(store.get(f.key_prefix + "peer/" + std::to_string(r), f.timeout_ms), r, lanes.size());
    for (size_t l = 0; l < lanes.size(); ++l) peers[l].push_back(of_rank[l]);
  }
  if (probe) probe->remove();  // every rank published its host, so every rank has read our probe
  for (size_t l = 0; l < lanes.size(); ++l) lanes[l]->set_peers(std::move(peers[l]));
  if (lanes[0]->topology().shares_memory()) share_memory(store, f, lanes);
  connect_all(lanes);
  return lanes[0]->topology();
}

}  // namespace unicc
