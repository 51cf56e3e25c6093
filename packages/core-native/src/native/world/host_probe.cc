#include "world/host_probe.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>
#include <vector>

#include "common/error.h"

namespace unicc {
namespace {

struct Probe {
  std::string hostname;
  std::string nonce;
};

std::string probe_path(const std::string& prefix, int rank) { return "/dev/shm/" + prefix + "-probe-" + std::to_string(rank); }

std::string random_nonce() {
  std::random_device rd;
  std::ostringstream out;
  out << std::hex;
  for (int i = 0; i < 4; ++i) out << rd();
  return out.str();
}

std::string this_hostname() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) throw CommError("gethostname failed: cannot tell which host this rank is on");
  return name;
}

bool write_probe(const std::string& path, const std::string& nonce) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const bool whole = write(fd, nonce.data(), nonce.size()) == static_cast<ssize_t>(nonce.size());
  close(fd);
  return whole;
}

bool reads_nonce(const std::string& path, const std::string& nonce) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  const std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return got == nonce;
}

Probe parse(const std::string& value, int rank) {
  const size_t nl = value.find('\n');
  if (nl == std::string::npos) throw CommError("rank " + std::to_string(rank) + "'s host probe in the store is malformed: is every rank the same unicc version?");
  return {value.substr(0, nl), value.substr(nl + 1)};
}

}  // namespace

HostProbe::HostProbe(RendezvousStore& store, const std::string& key_prefix, int rank, int size,
                     const std::string& file_prefix, int timeout_ms)
    : path_(probe_path(file_prefix, rank)) {
  const Probe mine{this_hostname(), random_nonce()};
  // No usable /dev/shm: this rank can share memory with nobody.
  const bool wrote = write_probe(path_, mine.nonce);
  if (!wrote) path_.clear();
  store.set(key_prefix + "host-probe/" + std::to_string(rank), mine.hostname + "\n" + mine.nonce);
  std::vector<Probe> all;
  for (int r = 0; r < size; ++r) all.push_back(parse(store.get(key_prefix + "host-probe/" + std::to_string(r), timeout_ms), r));

  std::vector<bool> shares;  // by rank: whether it shares this rank's /dev/shm
  for (int r = 0; r < size; ++r) shares.push_back(r == rank || (wrote && reads_nonce(probe_path(file_prefix, r), all[r].nonce)));
  int first = 0;
  while (!shares[first]) ++first;
  const std::string& name = all[first].hostname;
  bool ambiguous = false;
  for (int r = 0; r < size; ++r) ambiguous = ambiguous || (all[r].hostname == name && !shares[r]);
  host_id_ = ambiguous ? name + "#" + std::to_string(first) : name;
}

void HostProbe::remove() {
  if (!path_.empty()) unlink(path_.c_str());
  path_.clear();
}

}  // namespace unicc
