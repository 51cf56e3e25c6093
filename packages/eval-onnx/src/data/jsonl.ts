import { readFileSync } from "node:fs";

import { toLabels, type Dataset } from "./dataset.js";

/**
 * JSON lines, one sample a line: `{"x": [...], "y": 3}` (nested arrays for a shaped sample; "y"
 * optional, and then on no line) or a bare array of features. Features become float32.
 */
export function readJsonLines(path: string): Dataset {
  const lines = readFileSync(path, "utf8").split("\n").filter((l) => l.trim() !== "");
  if (lines.length === 0) throw new Error(`unicc-eval: ${path} holds no samples`);
  let sampleShape: number[] | undefined;
  const values: number[] = [];
  const labels: number[] = [];
  let labelled = false;
  lines.forEach((line, i) => {
    const where = `${path} line ${i + 1}`;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (e) {
      throw new Error(`unicc-eval: ${where} is not JSON: ${(e as Error).message}`);
    }
    const { x, y } = Array.isArray(row) ? { x: row, y: undefined } : (row as { x?: unknown; y?: unknown });
    if (!Array.isArray(x)) throw new Error(`unicc-eval: ${where} has no "x" array`);
    const shape = shapeOf(x, where);
    if (!sampleShape) sampleShape = shape;
    else if (shape.join() !== sampleShape.join())
      throw new Error(`unicc-eval: ${where} has shape [${shape}], line 1 has [${sampleShape}]`);
    values.push(...(x.flat(Infinity) as number[]));
    if (i === 0) labelled = y !== undefined;
    else if ((y !== undefined) !== labelled) throw new Error(`unicc-eval: ${where}: "y" must be on every line or on none`);
    if (y !== undefined) labels.push(y as number);
  });
  return {
    features: Float32Array.from(values),
    type: "float32",
    sampleShape: sampleShape!,
    count: lines.length,
    labels: labelled ? toLabels(labels, path) : undefined,
    source: path,
  };
}

function shapeOf(x: unknown, where: string): number[] {
  if (!Array.isArray(x)) {
    if (typeof x !== "number") throw new Error(`unicc-eval: ${where} holds ${JSON.stringify(x)}, not a number`);
    return [];
  }
  const inner = x.map((e) => shapeOf(e, where).join());
  if (new Set(inner).size > 1) throw new Error(`unicc-eval: ${where} is a ragged array`);
  return [x.length, ...(x.length ? shapeOf(x[0], where) : [])];
}
