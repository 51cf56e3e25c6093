// Shared by the TypeScript-side fuzz targets: inputs read as bodies, each after a u8 length, get
// correct u32 frame lengths here, so that mutations inside a body reach the parsers instead of
// breaking the framing.
export function framed(data) {
  const frames = [];
  for (let i = 0; i < data.length; ) {
    const body = data.subarray(i + 1, i + 1 + data[i]);
    i += 1 + data[i];
    const head = Buffer.alloc(4);
    head.writeUInt32BE(body.length, 0);
    frames.push(head, body);
  }
  return Buffer.concat(frames);
}
