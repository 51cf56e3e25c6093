#pragma once
// Which ranks share a host is decided by whether they really share memory, not by their hostname:
// machines cloned from one image, and containers with a fixed hostname, all carry the same name.
// Each rank leaves a probe file with a random nonce in /dev/shm; the ranks whose probes it can
// read are on its host. Sharing one /dev/shm is an equivalence, so every rank of a host finds the
// same group, and every rank computes the same name for it.
#include <string>

#include "world/store.h"

namespace unicc {

class HostProbe {
 public:
  // Finds this rank's host among `size` ranks. Probe files are /dev/shm/<file_prefix>-probe-<rank>
  // (unicc-<job>-<lane tag>, so the launcher's cleanup of /dev/shm/unicc-<job>-* covers them);
  // store keys are <key_prefix>host-probe/<rank>.
  HostProbe(RendezvousStore& store, const std::string& key_prefix, int rank, int size, const std::string& file_prefix,
            int timeout_ms);
  ~HostProbe() { remove(); }
  HostProbe(const HostProbe&) = delete;
  HostProbe& operator=(const HostProbe&) = delete;

  // Equal on exactly the ranks that share this rank's /dev/shm: the plain hostname where no other
  // host carries it (so messages name the machine as users know it), else hostname#first-rank.
  const std::string& host_id() const { return host_id_; }
  // Removes the probe file; call once every rank has published its host (each read ours by then).
  void remove();

 private:
  std::string path_;
  std::string host_id_;
};

}  // namespace unicc
