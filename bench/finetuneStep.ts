// Measures one fine-tuning step of MobileNetV2 plus a linear head: the training graph run in
// onnxruntime-node (forward and backward), then multitag's AdamW update of the trainable parameters.
// Run it directly to print one JSON line per measurement:
//   node dist/bench/finetuneStep.js MODEL.onnx --batch 32 --blocks all|N [--steps 5] [--threads 2]
// Peak RSS is the whole process's, so measure each configuration in a fresh process.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-node';
import { encodeModel, readModel, tensorDims, tensorToFloat32 } from '../src/onnx/model.js';
import { appendLinearHead, cutAtTensor, setInputShape } from '../src/onnx/graph.js';
import { buildTrainingGraph } from '../src/autodiff/trainingGraph.js';
import { AdamW, defaultAdamW } from '../src/train/adamw.js';

/** Number of inverted-residual blocks in MobileNetV2 (conv1 to conv50). */
export const MOBILENET_V2_BLOCKS = 17;

/**
 * Returns the MobileNetV2 initializers to train when only the last `blocks` inverted-residual blocks,
 * the final 1x1 conv (conv51) and the head are unfrozen; 'all' also trains the stem (conv0). Block 0 is
 * conv1-conv2 and block b >= 1 is conv(3b)-conv(3b+2), as in the shared model's node names.
 */
export function mobileNetV2Trainable(initializerNames: readonly string[], blocks: number | 'all'): string[] {
  const firstBlock = blocks === 'all' ? -1 : MOBILENET_V2_BLOCKS - blocks;
  const blockOf = (convIndex: number): number => {
    if (convIndex === 0) {
      return -1;
    }
    if (convIndex <= 2) {
      return 0;
    }
    return convIndex === 51 ? MOBILENET_V2_BLOCKS : Math.floor(convIndex / 3);
  };
  return initializerNames.filter((name) => {
    if (name.startsWith('head_')) {
      return true;
    }
    const match = /^conv(\d+)_[wb]$/.exec(name);
    return match !== null && blockOf(Number(match[1])) >= firstBlock;
  });
}

export interface TrainingBenchmarkOptions {
  modelPath: string;
  batchSize: number;
  imageSize: number;
  /** Unfrozen inverted-residual blocks counted from the end, or 'all' for full fine-tuning. */
  blocks: number | 'all';
  /** Timed steps after one warm-up step. */
  steps: number;
  threads: number;
  labels?: number;
}

export interface TrainingBenchmarkResult {
  batchSize: number;
  blocks: number | 'all';
  parameterTensors: number;
  nodes: number;
  buildMs: number;
  sessionMs: number;
  /** Median step time divided by the batch size; a step is the session run plus the AdamW update. */
  msPerImage: number;
  /** Fastest step divided by the batch size. */
  fastestMsPerImage: number;
  /** Share of the median step spent in the AdamW update. */
  optimizerShare: number;
  /** Peak resident set size of the whole process so far, in MiB. */
  peakRssMiB: number;
}

/** Builds the training graph for the options and times `steps` training steps after one warm-up step. */
export async function benchmarkTrainingStep(options: TrainingBenchmarkOptions): Promise<TrainingBenchmarkResult> {
  const labels = options.labels ?? 5;
  const { batchSize, imageSize } = options;
  const backbone = setInputShape(await readModel(options.modelPath), 'input', ['N', 3, imageSize, imageSize]);
  const forward = appendLinearHead(cutAtTensor(backbone, 'features'), {
    featuresName: 'features',
    weight: Float32Array.from({ length: labels * 1280 }, (_, index) => Math.sin(index) * 0.02),
    bias: new Float32Array(labels),
  });
  const initializers = forward.graph?.initializer ?? [];
  const trainable = mobileNetV2Trainable(initializers.map((tensor) => tensor.name ?? ''), options.blocks);

  let start = performance.now();
  const training = buildTrainingGraph({ forward, inputName: 'input', logitsName: 'logits', trainable, batchSize });
  const buildMs = performance.now() - start;

  start = performance.now();
  const session = await ort.InferenceSession.create(encodeModel(training.model), {
    intraOpNumThreads: options.threads,
    interOpNumThreads: 1,
    enableMemPattern: false,
  });
  const sessionMs = performance.now() - start;

  const parameters = new Map<string, Float32Array>();
  const feeds: Record<string, ort.Tensor> = {
    input: new ort.Tensor('float32', Float32Array.from({ length: batchSize * 3 * imageSize * imageSize }, (_, index) => Math.sin(index * 0.37)), [batchSize, 3, imageSize, imageSize]),
    targets: new ort.Tensor('float32', Float32Array.from({ length: batchSize * labels }, (_, index) => index % 2), [batchSize, labels]),
  };
  for (const tensor of initializers) {
    if (trainable.includes(tensor.name ?? '')) {
      const values = tensorToFloat32(tensor);
      parameters.set(tensor.name ?? '', values);
      feeds[tensor.name ?? ''] = new ort.Tensor('float32', values, tensorDims(tensor));
    }
  }

  // The feeds share the parameter arrays, so each update reaches the next run, as in training.
  const optimizer = new AdamW({ ...defaultAdamW, learningRate: 1e-5 });
  const step = async (): Promise<{ total: number; update: number }> => {
    const stepStart = performance.now();
    const outputs = await session.run(feeds);
    const gradients = new Map(training.parameterNames.map((name, index) => [name, outputs[training.gradientNames[index]].data as Float32Array]));
    const updateStart = performance.now();
    optimizer.update(parameters, gradients);
    const end = performance.now();
    return { total: end - stepStart, update: end - updateStart };
  };

  await step();
  const steps: { total: number; update: number }[] = [];
  for (let index = 0; index < options.steps; index++) {
    steps.push(await step());
  }
  await session.release();
  steps.sort((a, b) => a.total - b.total);
  const median = steps[Math.floor(steps.length / 2)];

  return {
    batchSize,
    blocks: options.blocks,
    parameterTensors: trainable.length,
    nodes: training.model.graph?.node?.length ?? 0,
    buildMs: Math.round(buildMs),
    sessionMs: Math.round(sessionMs),
    msPerImage: Number((median.total / batchSize).toFixed(2)),
    fastestMsPerImage: Number((steps[0].total / batchSize).toFixed(2)),
    optimizerShare: Number((median.update / median.total).toFixed(3)),
    peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
  };
}

function optionValue(args: readonly string[], name: string, fallback: string): string {
  const index = args.indexOf(name);
  return index >= 0 && index + 1 < args.length ? args[index + 1] : fallback;
}

async function main(args: readonly string[]): Promise<void> {
  const modelPath = args[0];
  if (!modelPath || modelPath.startsWith('--')) {
    process.stderr.write('usage: node dist/bench/finetuneStep.js MODEL.onnx [--batch 32] [--size 224] [--blocks all|N] [--steps 5] [--threads 2]\n');
    process.exitCode = 2;
    return;
  }
  const blocksText = optionValue(args, '--blocks', 'all');
  const result = await benchmarkTrainingStep({
    modelPath: resolve(modelPath),
    batchSize: Number(optionValue(args, '--batch', '32')),
    imageSize: Number(optionValue(args, '--size', '224')),
    blocks: blocksText === 'all' ? 'all' : Number(blocksText),
    steps: Number(optionValue(args, '--steps', '5')),
    threads: Number(optionValue(args, '--threads', '2')),
  });
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main(process.argv.slice(2));
}
