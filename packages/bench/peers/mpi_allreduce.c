/* Open MPI peer of `unicc-bench`: MPI_Allreduce (float, sum, in place), timed exactly as
 * src/worker.ts times unicc: per size, WARMUP then ITERS x (restore input, barrier, GAP_US of
 * busy compute, t0, allreduce, t1); rank 0 prints the median as one JSON line on stdout, and
 * "progress mpi BYTES DONE/ITERS" on stderr at most once a second.
 * argv: the plan, "bytes:iters:warmup:gap_us,..." (src/plan.ts). */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

static double median(double* t, int n) {
  qsort(t, n, sizeof *t, cmp_double);
  return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

/* xorshift64, seeded by rank so that every rank contributes different numbers. */
static uint64_t next_u64(uint64_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (argc < 2) {
    if (rank == 0) fprintf(stderr, "usage: mpi_allreduce bytes:iters:warmup:gap_us,...\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  uint64_t seed = 0x9E3779B97F4A7C15ull * (uint64_t)(rank + 1);

  for (char* item = strtok(argv[1], ","); item; item = strtok(NULL, ",")) {
    long bytes;
    int iters, warmup, gap_us = 0;
    if (sscanf(item, "%ld:%d:%d:%d", &bytes, &iters, &warmup, &gap_us) < 3 || bytes <= 0 || bytes % 4 || iters <= 0 ||
        warmup < 0 || gap_us < 0) {
      if (rank == 0) fprintf(stderr, "mpi_allreduce: bad plan item '%s'\n", item);
      MPI_Abort(MPI_COMM_WORLD, 2);
    }
    const int count = (int)(bytes / 4);
    float* data = malloc(bytes);
    float* buf = malloc(bytes);
    double* times = malloc(sizeof(double) * iters);
    if (!data || !buf || !times) {
      fprintf(stderr, "mpi_allreduce: out of memory for %ld bytes\n", bytes);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    for (int i = 0; i < count; i++) data[i] = (float)(next_u64(&seed) >> 40) / (float)(1 << 24);

    double last_report = MPI_Wtime();
    for (int i = -warmup; i < iters; i++) {
      /* Summing the result again and again would overflow to inf; every run reduces the same data. */
      memcpy(buf, data, bytes);
      MPI_Barrier(MPI_COMM_WORLD);
      for (const double until = MPI_Wtime() + gap_us * 1e-6; MPI_Wtime() < until;) {
      }
      const double t0 = MPI_Wtime();
      MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      const double t1 = MPI_Wtime();
      if (i < 0) continue;
      times[i] = t1 - t0;
      if (rank == 0 && t1 - last_report >= 1 && i + 1 < iters) {
        fprintf(stderr, "progress mpi %ld %d/%d\n", bytes, i + 1, iters);
        last_report = t1;
      }
    }
    if (rank == 0) {
      const double m = median(times, iters);
      const double busbw = bytes / m * 2 * (size - 1) / size / 1e9;
      printf("{\"impl\":\"mpi\",\"ranks\":%d,\"bytes\":%ld,\"iters\":%d,\"median_s\":%.9g,\"busbw_GBps\":%.6g}\n", size, bytes,
             iters, m, busbw);
      fflush(stdout);
    }
    free(times);
    free(buf);
    free(data);
  }
  MPI_Finalize();
  return 0;
}
