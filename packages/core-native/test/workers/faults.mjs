// One rank of the fault tests. argv: scenario, then scenario arguments.
//   die VICTIM AFTER [named] - everybody loops allreduce on 8 MiB (with "named": through the
//                        engine); VICTIM SIGKILLs itself after AFTER collectives. Survivors print
//                        "ERROR <ms since the victim's death> <message>".
//   isolate VICTIM AFTER - like die, but VICTIM takes its own host's network link down instead
//                        (run it in a network namespace: the whole emulated host goes dark).
//   mismatch ODD       - rank ODD passes a shorter buffer; every rank prints "ERROR <message>".
//   big                - one 16 MiB allreduce (it touches all the shared memory a host's ranks use), then "OK".
import { execFileSync } from "node:child_process";
import { init, UniccError } from "@unicc/core";

const [scenario, a, b, how] = process.argv.slice(2);
const via = (name) => (how === "named" ? { name } : {});
const world = await init();
const { rank } = world;
console.log(`PID ${process.pid}`);

if (scenario === "die" || scenario === "isolate") {
  // The launcher stops everybody once the victim dies; outlive its SIGTERM so that what the
  // core itself detects can be checked (its SIGKILL after the grace period still ends us).
  process.on("SIGTERM", () => console.log("SIGTERM ignored"));
  const victim = Number(a), after = Number(b);
  const buf = new Float32Array(2 << 20).fill(1);
  for (let i = 0; ; i++) {
    if (rank === victim && i === after) {
      console.log(`DYING ${Date.now()}`);
      if (scenario === "die") process.kill(process.pid, "SIGKILL");
      execFileSync("ip", ["link", "set", "dev", "eth0", "down"]);
    }
    try {
      await world.allreduce(buf, via("grad"));
    } catch (e) {
      console.log(`ERROR ${Date.now()} ${e.message}`);
      // Later collectives fail at once with the same cause.
      await world.allreduce(new Float32Array(4), via("later")).catch((e2) => console.log(`LATER ${e2.message === e.message}`));
      process.exit(3);
    }
  }
}

if (scenario === "big") {
  world.allreduceSync(new Float32Array(4 << 20).fill(1));
  console.log("OK");
  await world.close();
}

if (scenario === "mismatch") {
  const odd = Number(a);
  const buf = new Float32Array(rank === odd ? 999 : 1000).fill(rank);
  try {
    await world.allreduce(buf);
    console.log("NO ERROR");
  } catch (e) {
    console.log(`ERROR ${e.message}`);
    console.log(`ERROR IS UniccError ${e instanceof UniccError}`);
  }
  await world.close();
}
