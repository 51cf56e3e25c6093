#!/usr/bin/env node
// Minimal TCP throughput probe for checking the cluster's shaping (no iperf3 dependency).
//   node tcp-rate.mjs sink ADDR PORT STREAMS
//       accept STREAMS connections; when all have closed print one JSON line
//       {"bytes":N,"seconds":S,"mbit":R} measured at the receiver, first byte to last byte
//   node tcp-rate.mjs send ADDR PORT STREAMS SECONDS [FIRST_LOCAL_PORT]
//       open STREAMS connections and write flat out for SECONDS; with FIRST_LOCAL_PORT the
//       streams bind FIRST_LOCAL_PORT, +2, +4, ... (the cluster's per-flow bucket is chosen by port
//       bits 4:1, so consecutive even ports land in distinct buckets)
import net from "node:net";

const [mode, addr, portArg, streamsArg, secondsArg, firstPortArg] = process.argv.slice(2);
const port = Number(portArg);
const streams = Number(streamsArg);

if (mode === "sink") {
  let bytes = 0;
  let first = 0;
  let last = 0;
  let open = 0;
  let accepted = 0;
  const server = net.createServer((sock) => {
    accepted++;
    open++;
    if (accepted === streams) server.close();
    sock.on("data", (chunk) => {
      const now = performance.now();
      if (first === 0) first = now;
      last = now;
      bytes += chunk.length;
    });
    sock.on("error", () => {});
    sock.on("close", () => {
      if (--open > 0 || accepted < streams) return;
      const seconds = (last - first) / 1000;
      console.log(JSON.stringify({ bytes, seconds, mbit: (bytes * 8) / seconds / 1e6 }));
    });
  });
  server.listen(port, addr, () => console.log("listening"));
} else if (mode === "send") {
  const seconds = Number(secondsArg);
  const chunk = Buffer.alloc(1 << 20);
  let stop = false;
  setTimeout(() => (stop = true), seconds * 1000);
  for (let i = 0; i < streams; i++) {
    const opts = { host: addr, port };
    if (firstPortArg) opts.localPort = Number(firstPortArg) + 2 * i;
    const sock = net.connect(opts);
    const pump = () => {
      while (!stop) if (!sock.write(chunk)) return;
      sock.end();
    };
    sock.on("connect", pump);
    sock.on("drain", pump);
    sock.on("error", (err) => {
      console.error(`stream ${i}: ${err.message}`);
      process.exitCode = 1;
    });
  }
} else {
  console.error("usage: tcp-rate.mjs sink ADDR PORT STREAMS | send ADDR PORT STREAMS SECONDS [FIRST_LOCAL_PORT]");
  process.exit(2);
}
