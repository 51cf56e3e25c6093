"""Elastic training with unicc.torch's DistributedOptimizer (test/elastic.test.ts).

    elastic_train.py train SEED STEPS COMMIT_EVERY [KILLS]
        trains under unicc.elastic.run. KILLS "2@5,3@reform": worker 2 (UNICC_ELASTIC_ID) SIGKILLs
        itself in the middle of step 5 (forward done, no gradient handed over), worker 3 once it has
        re-formed the world, before the state is synced in it. Under `unicc run --ray`, "2@5:actor"
        SIGKILLs the process of worker 2's Ray actor instead, "2@5:ray" ray.kill()s that actor; under
        Slurm, "2@5:scancel" cancels worker 2's job step, "2@5:down" sets its node DOWN (what
        slurmctld does to a node that stops answering). With JOIN_AT=J, JOIN_HOSTS=FILE, JOIN_LINE="localhost:3" and
        JOIN_SIZE=3, rank 0 writes JOIN_LINE into FILE (the job's discovery script prints it) at
        step J, and the ranks commit there until the world has JOIN_SIZE ranks (newcomers joined,
        or, with fewer slots listed, the ranks on the dropped ones gone). Rank 0 prints
        "START step=S size=N" each time the function (re)starts; every rank prints "FINAL <weights>"; "AT start|fault <ms>" time them.
    elastic_train.py reference SEED STEPS SCHEDULE
        the same steps in one process without unicc: SCHEDULE "0:4,4:3" = from step 0 at 4 ranks,
        from step 4 at 3; each rank's batch is its shard at the size in effect. Prints "FINAL <weights>".

Deterministic: float64, plain SGD, fixed seeds; each step's rows depend on (step, rank, size) only.
"""

import os
import signal
import subprocess
import sys

import torch

ROWS, PER_RANK, FEATURES = 96, 4, 6


def data(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(ROWS, FEATURES, generator=g, dtype=torch.float64)
    y = torch.randn(ROWS, 1, generator=g, dtype=torch.float64)
    return x, y


def model(seed):
    torch.manual_seed(seed + 1)
    return torch.nn.Sequential(torch.nn.Linear(FEATURES, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1)).double()


def shard(x, y, step, rank, size):
    """Rank `rank`'s rows of step `step` at `size` ranks: the step's size*PER_RANK rows, dealt out."""
    start = step * 7
    rows = [(start + i) % ROWS for i in range(size * PER_RANK)][rank::size]
    return x[rows], y[rows]


def loss(m, x, y):
    return torch.nn.functional.mse_loss(m(x), y)


def weights(m):
    return " ".join(repr(v) for v in torch.cat([p.detach().reshape(-1) for p in m.parameters()]).tolist())


SLURM_FAULTS = {
    "scancel": lambda: ["scancel", "%s.%s" % (os.environ["SLURM_JOB_ID"], os.environ["SLURM_STEP_ID"])],
    "down": lambda: ["scontrol", "update", "NodeName=" + os.environ["SLURMD_NODENAME"], "State=DOWN", "Reason=unicc-test"],
}


def train(seed, steps, commit_every, kills=""):
    import time

    import unicc
    import unicc.elastic
    import unicc.torch as uc

    uc.init()
    me = os.environ.get("UNICC_ELASTIC_ID")
    kill, _, how = (dict(k.split("@") for k in kills.split(",") if k).get(me) or "").partition(":")
    if how == "ray":  # connected before, so that the kill is not late
        import ray

        ray.init(_node_ip_address=os.environ.get("UNICC_RAY_NODE_IP"), log_to_driver=False, configure_logging=False)
        actor = ray.get_actor(os.environ["UNICC_RAY_ACTOR"], namespace="unicc")
    if kill == "reform":  # dies in the new world before the state reaches it: the others re-form again
        b = unicc.bridge()
        join = b.reform
        b.reform = lambda: (join(), os.kill(os.getpid(), signal.SIGKILL))
    join_at = int(os.environ.get("JOIN_AT", "-1"))
    x, y = data(seed)
    m = model(seed)
    opt = uc.DistributedOptimizer(torch.optim.SGD(m.parameters(), lr=0.1), named_parameters=m.named_parameters())
    state = unicc.elastic.State(model=m, optimizer=opt, step=0)

    @unicc.elastic.run
    def loop(state):
        if uc.rank() == 0:
            print("START step=%d size=%d\nAT start %d" % (state.step, uc.size(), time.time() * 1000), flush=True)
        while state.step < steps:
            bx, by = shard(x, y, state.step, uc.rank(), uc.size())
            opt.zero_grad()
            value = loss(m, bx, by)
            if kill == str(state.step):
                # A line from an actor about to die may not reach the launcher: let it go first.
                at = time.time() + (0.5 if how in ("ray", "actor") else 0)
                print("AT fault %d" % (at * 1000), flush=True)
                time.sleep(max(0, at - time.time()))
                if how == "ray":
                    ray.kill(actor)
                elif how in SLURM_FAULTS:
                    subprocess.run(SLURM_FAULTS[how](), check=True)
                else:
                    os.kill(os.getppid() if how == "actor" else os.getpid(), signal.SIGKILL)
                time.sleep(60)  # until the actor's end takes this process with it
            value.backward()
            opt.step()
            state.step += 1
            if state.step % commit_every == 0:
                state.commit()
            if state.step == join_at:
                if uc.rank() == 0:
                    with open(os.environ["JOIN_HOSTS"], "w") as f:
                        f.write(os.environ["JOIN_LINE"] + "\n")
                    print("AT fault %d" % (time.time() * 1000), flush=True)
                while uc.size() != int(os.environ["JOIN_SIZE"]):
                    time.sleep(0.1)
                    state.commit()

    loop(state)
    print("FINAL " + weights(m), flush=True)
    uc.shutdown()


def reference(seed, steps, schedule):
    x, y = data(seed)
    m = model(seed)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    starts = sorted((int(a), int(b)) for a, b in (p.split(":") for p in schedule.split(",")))
    for step in range(steps):
        size = [n for s, n in starts if s <= step][-1]
        grads = []
        for rank in range(size):
            m.zero_grad()
            loss(m, *shard(x, y, step, rank, size)).backward()
            grads.append([p.grad.clone() for p in m.parameters()])
        for i, p in enumerate(m.parameters()):
            p.grad = sum(g[i] for g in grads) / size
        opt.step()
    print("FINAL " + weights(m), flush=True)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "train":
        train(int(args[0]), int(args[1]), int(args[2]), *args[3:4])
    else:
        reference(int(args[0]), int(args[1]), args[2])
