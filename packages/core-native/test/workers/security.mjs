// One rank of the security tests. argv: scenario.
//   allreduce - a few float64 sum allreduces of inputs any rank can regenerate; prints
//               "RESULT ok" when every element matches a reference computed here, else "RESULT bad ...".
//               With TEST_STORE_TOKEN, the store is reached with that token and UNICC_JOB_TOKEN only
//               serves between ranks (to test the ranks' own handshake).
//   token     - prints a digest of UNICC_JOB_TOKEN (never the token) and whether the token shows
//               on the command line of this process or of any process above it.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { init, StoreClient } from "@unicc/core";

const scenario = process.argv[2];

if (scenario === "token") {
  const token = process.env.UNICC_JOB_TOKEN ?? "";
  let onCmdline = false;
  for (let pid = process.pid; pid > 1; ) {
    let status;
    try {
      if (readFileSync(`/proc/${pid}/cmdline`).includes(token)) onCmdline = true;
      status = readFileSync(`/proc/${pid}/status`, "utf8");
    } catch {
      break;
    }
    pid = Number(/PPid:\s+(\d+)/.exec(status)?.[1] ?? 0);
  }
  const digest = createHash("sha256").update(token).digest("hex").slice(0, 16);
  console.log(`TOKEN ${/^[0-9a-f]{64}$/.test(token)} ${digest} cmdline=${onCmdline}`);
  const world = await init();
  await world.allreduce(new Float64Array(16).fill(1));
  await world.close();
}

if (scenario === "allreduce") {
  const storeToken = process.env.TEST_STORE_TOKEN;
  const store = storeToken && (await StoreClient.connect(process.env.UNICC_STORE_ADDR, { token: storeToken }));
  const world = await init(store ? { store } : {});
  const { rank, size } = world;
  // xorshift-style integers per (seed, rank, index), exact in float64 sums.
  const value = (seed, r, i) => {
    let x = (seed * 2654435761 + r * 40503 + i * 2246822519) >>> 0;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % 100003;
  };
  const bad = [];
  for (const [seed, n] of [[1, 1], [2, 1000], [3, 300001]]) {
    const buf = new Float64Array(n);
    for (let i = 0; i < n; i++) buf[i] = value(seed, rank, i);
    await world.allreduce(buf);
    for (let i = 0; i < n; i++) {
      let want = 0;
      for (let r = 0; r < size; r++) want += value(seed, r, i);
      if (buf[i] !== want) {
        bad.push(`seed ${seed} [${i}] ${buf[i]} != ${want}`);
        break;
      }
    }
  }
  console.log(bad.length ? `RESULT bad ${bad.join("; ")}` : "RESULT ok");
  await world.close();
  if (store) store.close();
}
