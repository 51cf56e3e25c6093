/* Open MPI peer of `unicc bench`: MPI_Allreduce (float, sum) timed exactly as the unicc worker
 * times its own: per size, warm-up, then ITERS x (barrier, t0, allreduce, t1) on rank 0,
 * median reported as one JSON line. argv: sizes in bytes (comma separated), iteration plan. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

/* Same plan as bench/index.ts: many repetitions for small sizes, few for large ones. */
static int iters_for(long bytes, double budget_s) {
  long it = (long)(budget_s * 2e9 / (bytes + 65536));
  if (it < 5) it = 5;
  if (it > 200) it = 200;
  return (int)it;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const double budget = argc > 2 ? atof(argv[2]) : 1.0;
  char* list = strdup(argv[1]);
  for (char* tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
    const long bytes = atol(tok);
    const long n = bytes / 4;
    float* buf = malloc(bytes);
    srand(rank + 1);
    for (long i = 0; i < n; i++) buf[i] = (float)rand() / RAND_MAX;
    const int iters = iters_for(bytes, budget);
    double* t = malloc(sizeof(double) * iters);
    for (int w = 0; w < 2; w++) MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    for (int i = 0; i < iters; i++) {
      MPI_Barrier(MPI_COMM_WORLD);
      const double t0 = MPI_Wtime();
      MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      t[i] = MPI_Wtime() - t0;
    }
    if (rank == 0) {
      qsort(t, iters, sizeof(double), cmp);
      printf("{\"impl\":\"mpi\",\"ranks\":%d,\"bytes\":%ld,\"iters\":%d,\"median_s\":%.9f}\n", size, bytes, iters,
             t[iters / 2]);
      fflush(stdout);
    }
    free(t);
    free(buf);
  }
  free(list);
  MPI_Finalize();
  return 0;
}
