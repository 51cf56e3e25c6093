#pragma once
// How a rank's communicators become one world with the others', through a rendezvous store:
// the same steps for every binding (the TypeScript API, and any later one).
#include <string>
#include <vector>

#include "communicator.h"
#include "world/store.h"

namespace unicc {

struct Formation {
  std::string key_prefix;  // this world's store keys: <key_prefix>peer/<rank>, ...
  std::string addr;        // where this rank's communicators listen (an address its peers reach)
  std::string host_id;     // this rank's host identity (UNICC_HOST_ID); empty: probe /dev/shm (host_probe.h)
  std::string probe_prefix;  // names the probe files: unicc-<job>-<tag>
  int timeout_ms = 30000;  // for each wait on another rank
};

// Joins `lanes`, this rank's communicators of one world (made with its rank, size and job id;
// lane i of every rank meets lane i of the others), to the other ranks' lanes: each listens,
// publishes where; all learn every rank's host; the first rank of each host makes the shared
// memory, the others map it, and its names go once all have (so no crash can leave them behind);
// then every lane connects. Returns lanes[0]'s topology. Throws CommError (the store's, naming
// the key, when a rank does not come).
const Topology& form_world(RendezvousStore& store, const Formation& f, const std::vector<Communicator*>& lanes);

}  // namespace unicc
