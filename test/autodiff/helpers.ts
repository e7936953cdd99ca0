// Helpers for the autodiff tests: small random ONNX graphs, sessions, a float64 loss and central
// finite differences.
import * as ort from 'onnxruntime-node';
import {
  type ModelProto,
  type NodeProto,
  type TensorProto,
  encodeModel,
  float32Tensor,
  float32ValueInfo,
  onnx,
  tensorDims,
  tensorToFloat32,
} from '../../src/onnx/model.js';
import { buildTrainingGraph, type TrainingGraph } from '../../src/autodiff/trainingGraph.js';
export { seededRandom } from '../support/seededRandom.js';
import { seededRandom } from '../support/seededRandom.js';


export function randomArray(random: () => number, length: number, low = -1, high = 1): Float32Array {
  return Float32Array.from({ length }, () => low + (high - low) * random());
}

export function randomTensor(random: () => number, name: string, dims: readonly number[], low = -1, high = 1): TensorProto {
  return float32Tensor(name, dims, randomArray(random, dims.reduce((product, dim) => product * dim, 1), low, high));
}

export interface SmallModel {
  nodes: NodeProto[];
  initializers: TensorProto[];
  inputName: string;
  inputShape: (number | string)[];
  logitsName: string;
  opset?: number;
}

export function buildModel(spec: SmallModel): ModelProto {
  return onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: spec.opset ?? 13 }],
    graph: onnx.GraphProto.create({
      name: 'test',
      node: spec.nodes,
      input: [float32ValueInfo(spec.inputName, spec.inputShape)],
      output: [float32ValueInfo(spec.logitsName, [spec.inputShape[0], 'L'])],
      initializer: spec.initializers,
    }),
  });
}

/** Returns a copy of `model` where the named initializers become graph inputs, so tests can feed perturbed values. */
export function initializersAsInputs(model: ModelProto, names: readonly string[]): ModelProto {
  const graph = model.graph!;
  const selected = new Set(names);
  const tensors = (graph.initializer ?? []).filter((tensor) => selected.has(tensor.name ?? ''));
  return onnx.ModelProto.create({
    ...model,
    graph: onnx.GraphProto.create({
      ...graph,
      input: [...(graph.input ?? []), ...tensors.map((tensor) => float32ValueInfo(tensor.name ?? '', tensorDims(tensor)))],
      initializer: (graph.initializer ?? []).filter((tensor) => !selected.has(tensor.name ?? '')),
    }),
  });
}

export function initializerValues(model: ModelProto, names: readonly string[]): Map<string, { dims: number[]; values: Float32Array }> {
  const result = new Map<string, { dims: number[]; values: Float32Array }>();
  for (const tensor of model.graph?.initializer ?? []) {
    if (names.includes(tensor.name ?? '')) {
      result.set(tensor.name ?? '', { dims: tensorDims(tensor), values: tensorToFloat32(tensor) });
    }
  }
  return result;
}

export async function createSession(model: ModelProto): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(encodeModel(model), { intraOpNumThreads: 1, enableMemPattern: false });
}

/** Mean binary cross-entropy with logits, accumulated in float64. */
export function meanBinaryCrossEntropy(logits: Float32Array, targets: Float32Array): number {
  let total = 0;
  for (let index = 0; index < logits.length; index++) {
    const x = logits[index];
    total += Math.max(x, 0) - x * targets[index] + Math.log1p(Math.exp(-Math.abs(x)));
  }
  return total / logits.length;
}

export interface GradientCheck {
  parameter: string;
  index: number;
  analytic: number;
  numeric: number;
}

export interface GradientCheckOptions {
  /** Finite-difference step. */
  step: number;
  /** Entries checked per parameter: the largest-gradient ones first, then random ones. */
  largestEntries: number;
  randomEntries: number;
  seed?: number;
  /** Parameters to check; default all trainable ones. */
  checkedParameters?: readonly string[];
  /** Batch size that the formulations of a dynamic-batch graph are chosen for. */
  expectedBatchSize?: number;
}

/**
 * Builds the training graph, runs it once, and compares each sampled gradient entry with the central
 * difference of the float64 loss computed from a forward session's logits.
 */
export async function checkGradients(
  forward: ModelProto,
  inputName: string,
  logitsName: string,
  trainable: readonly string[],
  images: ort.Tensor,
  targets: Float32Array,
  options: GradientCheckOptions,
  batchSize?: number,
): Promise<{ checks: GradientCheck[]; training: TrainingGraph; loss: number }> {
  const training = buildTrainingGraph({ forward, inputName, logitsName, trainable, batchSize, expectedBatchSize: options.expectedBatchSize });
  const trainingSession = await createSession(training.model);
  const parameters = initializerValues(forward, trainable);
  const labelCount = targets.length / images.dims[0];

  const feeds: Record<string, ort.Tensor> = {
    [inputName]: images,
    targets: new ort.Tensor('float32', targets, [images.dims[0], labelCount]),
  };
  for (const [name, { dims, values }] of parameters) {
    feeds[name] = new ort.Tensor('float32', values, dims);
  }
  const results = await trainingSession.run(feeds);
  const loss = (results.loss.data as Float32Array)[0];

  const perturbable = options.checkedParameters ?? trainable;
  const forwardSession = await createSession(initializersAsInputs(forward, perturbable));
  const lossAt = async (parameter: string, values: Float32Array): Promise<number> => {
    const forwardFeeds: Record<string, ort.Tensor> = { [inputName]: images };
    for (const name of perturbable) {
      const entry = parameters.get(name)!;
      forwardFeeds[name] = new ort.Tensor('float32', name === parameter ? values : entry.values, entry.dims);
    }
    const output = await forwardSession.run(forwardFeeds, [logitsName]);
    return meanBinaryCrossEntropy(output[logitsName].data as Float32Array, targets);
  };

  const random = seededRandom(options.seed ?? 7);
  const checks: GradientCheck[] = [];
  for (let parameterIndex = 0; parameterIndex < training.parameterNames.length; parameterIndex++) {
    const parameter = training.parameterNames[parameterIndex];
    if (options.checkedParameters && !options.checkedParameters.includes(parameter)) {
      continue;
    }
    const gradient = results[training.gradientNames[parameterIndex]].data as Float32Array;
    const base = parameters.get(parameter)!.values;

    const byMagnitude = Array.from(gradient.keys()).sort((a, b) => Math.abs(gradient[b]) - Math.abs(gradient[a]));
    const entries = new Set(byMagnitude.slice(0, options.largestEntries));
    for (let attempt = 0; attempt < options.randomEntries; attempt++) {
      entries.add(Math.floor(random() * gradient.length));
    }

    for (const index of entries) {
      const perturbed = Float32Array.from(base);
      perturbed[index] = base[index] + options.step;
      const above = await lossAt(parameter, perturbed);
      perturbed[index] = base[index] - options.step;
      const below = await lossAt(parameter, perturbed);
      // Divide by the float32 step actually taken, not the requested one.
      const actualStep = Math.fround(base[index] + options.step) - Math.fround(base[index] - options.step);
      checks.push({ parameter, index, analytic: gradient[index], numeric: (above - below) / actualStep });
    }
  }
  return { checks, training, loss };
}

/**
 * Returns the checks whose analytic and numeric values differ by more than
 * absoluteTolerance + relativeTolerance * max(|analytic|, |numeric|).
 */
export function failedChecks(checks: readonly GradientCheck[], relativeTolerance: number, absoluteTolerance: number): GradientCheck[] {
  return checks.filter((check) => {
    const scale = Math.max(Math.abs(check.analytic), Math.abs(check.numeric));
    return Math.abs(check.analytic - check.numeric) > absoluteTolerance + relativeTolerance * scale;
  });
}

export function describeChecks(checks: readonly GradientCheck[]): string {
  return checks.map((check) => `${check.parameter}[${check.index}]: analytic ${check.analytic.toExponential(4)}, numeric ${check.numeric.toExponential(4)}`).join('\n');
}
