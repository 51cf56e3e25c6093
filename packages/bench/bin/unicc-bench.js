#!/usr/bin/env node
// A committed entry, so that npm links the `unicc-bench` command before the first build exists.
await import("../dist/cli.js");
