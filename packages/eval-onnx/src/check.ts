import type { Dataset } from "./data/index.js";
import type { TensorMeta } from "./session.js";

export interface Binding {
  input: string;
  output: string;
  /** The model's fixed batch size, or undefined where its first axis is symbolic. */
  fixedBatch?: number;
}

const show = (shape: (number | string)[]) => `[${shape.join(", ")}]`;

/**
 * Which model input the data feeds and which output is scored, checked against the data's
 * element type and per-sample shape. Every mismatch is an error that says what the model wants,
 * what the data has, and what to do.
 */
export function bind(model: string, inputs: TensorMeta[], outputs: TensorMeta[], data: Dataset, rank: number, want: { input?: string; output?: string } = {}): Binding {
  const fail = (why: string): never => {
    throw new Error(`unicc-eval: rank ${rank}: ${model} does not fit ${data.source}: ${why}`);
  };
  const names = (ms: TensorMeta[]) => ms.map((m) => `'${m.name}'`).join(", ");
  let input: TensorMeta;
  if (want.input !== undefined) input = inputs.find((m) => m.name === want.input) ?? fail(`it has no input '${want.input}' (its inputs: ${names(inputs)})`);
  else if (inputs.length === 1) input = inputs[0];
  else input = fail(`it has ${inputs.length} inputs (${names(inputs)}); unicc-eval feeds one: name it with --input`);
  const output = want.output !== undefined
    ? (outputs.find((m) => m.name === want.output) ?? fail(`it has no output '${want.output}' (its outputs: ${names(outputs)})`))
    : outputs[0];

  const sample = show(data.sampleShape);
  if (input.type !== data.type)
    fail(`input '${input.name}' takes ${input.type}, the data is ${data.type} (convert it, e.g. np.asarray(x, np.${input.type}))`);
  if (input.shape.length !== data.sampleShape.length + 1)
    fail(`input '${input.name}' has shape ${show(input.shape)} (${input.shape.length} axes, the first one the batch), a sample of the data has shape ${sample}; reshape the data to ${show(input.shape.slice(1))} per sample`);
  input.shape.slice(1).forEach((d, i) => {
    if (typeof d === "number" && d !== data.sampleShape[i])
      fail(`input '${input.name}' has shape ${show(input.shape)}, a sample of the data has shape ${sample}: axis ${i + 1} must be ${d}, not ${data.sampleShape[i]}`);
  });
  if (output.type !== "float32") fail(`output '${output.name}' is ${output.type}; unicc-eval scores float32 outputs (name another with --output)`);
  if (output.shape.length !== 2)
    fail(`output '${output.name}' has shape ${show(output.shape)}; unicc-eval scores [batch, classes] outputs (name another with --output)`);
  return { input: input.name, output: output.name, fixedBatch: typeof input.shape[0] === "number" ? input.shape[0] : undefined };
}
