#!/bin/sh
# One rank of `unicc run` under Slurm (src/ts/launcher/slurm.ts): srun-rank.sh NODE JOB SRUN_ARGS...
# srun exits 0 when the node failed before its task's own exit reached srun. A rank lost that way
# must not look finished: if its node is no longer in the job's nodes (Slurm takes a failed node
# out of a --no-kill job), or the job is gone, that exit becomes 1.
node="$1"
job="$2"
shift 2
srun "$@"
code=$?
if [ "$code" -eq 0 ]; then
  nodes=$(squeue -h -j "$job" -o %N 2>/dev/null)
  if [ -z "$nodes" ]; then
    echo "unicc: Slurm job $job has ended under this rank (srun on $node)" >&2
    exit 1
  fi
  if ! scontrol show hostnames "$nodes" | grep -qx "$node"; then
    echo "unicc: node $node failed: Slurm took it out of job $job (its nodes now: $nodes)" >&2
    exit 1
  fi
fi
exit "$code"
