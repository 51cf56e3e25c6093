#pragma once
#include <string>

namespace unicc {

// The rendezvous store ranks meet through to form a world: the embedded TCP store, etcd, or
// whatever a binding serves. Values are bytes.
class RendezvousStore {
 public:
  virtual ~RendezvousStore() = default;
  virtual void set(const std::string& key, const std::string& value) = 0;
  // The key's value once some rank has set it, waiting up to timeout_ms; throws CommError naming
  // the key when it does not come.
  virtual std::string get(const std::string& key, int timeout_ms) = 0;
};

}  // namespace unicc
