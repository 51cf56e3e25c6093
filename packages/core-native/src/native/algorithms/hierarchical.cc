#include <vector>

#include "algorithms/ring.h"
#include "algorithms/schedules.h"

namespace unicc {

Schedule hierarchical_allreduce_schedule(int hosts, int local, int rank, const Partition& host_blocks, size_t es,
                                         size_t chunk_elems) {
  const int n = hosts * local, h = rank / local, l = rank % local;
  std::vector<int> host_members, ring_members;
  for (int j = 0; j < local; ++j) host_members.push_back(h * local + j);
  for (int j = 0; j < hosts; ++j) ring_members.push_back(j * local + l);
  const Chunking ch(host_blocks, chunk_elems);

  Schedule inside;
  inside.size = local;
  inside.rank = l;
  ring_reduce_scatter_phase(inside, ch, es, -1, {});  // local rank l ends owning block l
  Schedule all = lift(inside, host_members, rank, n, 0);

  const Schedule across = ring_allreduce_schedule(hosts, h, host_blocks.len(static_cast<size_t>(l)), es, chunk_elems);
  append_after(all, lift(across, ring_members, rank, n, host_blocks.start(static_cast<size_t>(l)) * es));

  Schedule share;
  share.size = local;
  share.rank = l;
  ring_allgather_phase(share, ch, es, 0, {}, false);
  append_after(all, lift(share, host_members, rank, n, 0));
  return all;
}

}  // namespace unicc
