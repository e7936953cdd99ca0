// Phase 2, "fine-tuning": backbone layers train together with the head. Each step runs a training
// graph generated from the forward graph (standard ONNX operators only) that returns the loss and the
// gradients; AdamW then updates the parameters held here in typed arrays.
import * as ort from 'onnxruntime-node';
import { inferenceSessionOptions, type ResolvedBackbone, type SessionSettings } from '../backbone/backbone.js';
import { buildTrainingGraph, LOSS_NAME, TARGETS_NAME } from '../autodiff/trainingGraph.js';
import type { ProgressCallback } from '../events.js';
import type { RgbImage } from '../image/decode.js';
import type { Random } from '../image/random.js';
import { encodeModel, tensorDims, tensorToFloat32 } from '../onnx/model.js';
import type { AdamW } from './adamw.js';
import type { ParameterSnapshot } from './callbacks.js';
import type { LinearHead } from './head.js';
import { augmentedBatch, normalizeBatch, type ImageSettings } from './images.js';
import { buildInferenceModel, headBiasName, headWeightName, logitsOutput } from './inferenceModel.js';
import type { EpochRunner } from './phase.js';
import type { PhaseName } from './record.js';

/** Everything the fine-tuning phase works on. */
export interface FinetuneInputs {
  backbone: ResolvedBackbone;
  /** The head after the adaptation phase; fine-tuning continues from it. */
  head: LinearHead;
  /** Backbone initializer names to train. */
  trainable: readonly string[];
  optimizer: AdamW;
  trainImages: readonly RgbImage[];
  trainTargets: Uint8Array;
  testViews: readonly RgbImage[];
  images: ImageSettings;
  /** Images per optimizer step. */
  batchSize: number;
  /** Images per training-graph run; gradients of the micro-batches of a step are summed. */
  microBatchSize: number;
  shuffleRandom: Random;
  augmentRandom: Random;
  session: SessionSettings;
}

/** The fine-tuning phase's epoch runner. */
export class FinetuneRunner implements EpochRunner {
  readonly phase: PhaseName = 'finetuning';
  private readonly parameterValues: ParameterSnapshot;
  private readonly parameterShapes = new Map<string, number[]>();
  private session: ort.InferenceSession | undefined;
  private gradientNames: string[] = [];
  private parameterNames: string[] = [];

  constructor(private readonly inputs: FinetuneInputs) {
    const initializers = new Map((inputs.backbone.model.graph?.initializer ?? []).map((tensor) => [tensor.name ?? '', tensor]));
    this.parameterValues = new Map();
    for (const name of inputs.trainable) {
      const tensor = initializers.get(name);
      if (!tensor) {
        throw new Error(`fine-tuning parameter ${name} is not an initializer of the backbone`);
      }
      this.parameterValues.set(name, tensorToFloat32(tensor));
      this.parameterShapes.set(name, tensorDims(tensor));
    }
    this.parameterValues.set(headWeightName, inputs.head.weight);
    this.parameterValues.set(headBiasName, inputs.head.bias);
    this.parameterShapes.set(headWeightName, [inputs.head.labelCount, inputs.head.featureSize]);
    this.parameterShapes.set(headBiasName, [inputs.head.labelCount]);
  }

  /** Builds the training graph and opens its session. */
  async prepare(): Promise<void> {
    const { inputs } = this;
    const forward = buildInferenceModel(inputs.backbone, this.parameterValues, inputs.head.labelCount, inputs.head.featureSize, { probabilities: false });
    const graph = buildTrainingGraph({
      forward,
      inputName: inputs.backbone.inputName,
      logitsName: logitsOutput,
      trainable: [...this.parameterValues.keys()],
      expectedBatchSize: inputs.microBatchSize,
    });
    this.parameterNames = graph.parameterNames;
    this.gradientNames = graph.gradientNames;
    this.session = await ort.InferenceSession.create(encodeModel(graph.model), {
      ...inferenceSessionOptions(inputs.session),
      // Without the memory pattern, peak memory of the training graph roughly halves at the same speed.
      enableMemPattern: false,
    });
  }

  learningRate(): number {
    return this.inputs.optimizer.settings.learningRate;
  }

  parameters(): ParameterSnapshot {
    return this.parameterValues;
  }

  /** Restores parameter values by name, for resuming. */
  setParameters(values: ParameterSnapshot): void {
    for (const [name, data] of values) {
      this.parameterValues.get(name)?.set(data);
    }
  }

  async trainEpoch(task: string, onProgress: ProgressCallback): Promise<number> {
    const { inputs } = this;
    const count = inputs.trainImages.length;
    const labelCount = inputs.head.labelCount;
    const order = inputs.shuffleRandom.shuffle(Array.from({ length: count }, (_, index) => index));
    let costSum = 0;

    for (let start = 0; start < count; start += inputs.batchSize) {
      const batch = order.slice(start, start + inputs.batchSize);
      const gradientSums = new Map<string, Float32Array>();

      for (let microStart = 0; microStart < batch.length; microStart += inputs.microBatchSize) {
        const indices = batch.slice(microStart, microStart + inputs.microBatchSize);
        const images = augmentedBatch(inputs.trainImages, indices, inputs.images, inputs.augmentRandom);
        const targets = new Float32Array(indices.length * labelCount);
        indices.forEach((imageIndex, row) => {
          for (let label = 0; label < labelCount; label++) {
            targets[row * labelCount + label] = inputs.trainTargets[imageIndex * labelCount + label];
          }
        });

        const { loss, gradients } = await this.runStep(images, targets, indices.length);
        costSum += loss * indices.length;

        // The graph's loss is a mean over its micro-batch, so weight each micro-batch by its share of the step.
        const weight = indices.length / batch.length;
        gradients.forEach((gradient, name) => {
          const sum = gradientSums.get(name);
          if (sum) {
            for (let index = 0; index < sum.length; index++) {
              sum[index] += weight * gradient[index];
            }
          } else {
            gradientSums.set(name, gradient.map((value) => value * weight));
          }
        });
        onProgress({ task, done: start + microStart + indices.length, total: count, unit: 'images' });
      }
      inputs.optimizer.update(this.parameterValues, gradientSums);
    }
    return costSum / count;
  }

  async testLogits(onProgress: ProgressCallback): Promise<Float32Array> {
    const { inputs } = this;
    const model = buildInferenceModel(inputs.backbone, this.parameterValues, inputs.head.labelCount, inputs.head.featureSize);
    const session = await ort.InferenceSession.create(encodeModel(model), inferenceSessionOptions(inputs.session));
    try {
      const size = inputs.images.inputSize;
      const labelCount = inputs.head.labelCount;
      const logits = new Float32Array(inputs.testViews.length * labelCount);
      const batchSize = 32;
      for (let start = 0; start < inputs.testViews.length; start += batchSize) {
        const views = inputs.testViews.slice(start, start + batchSize);
        const input = new ort.Tensor('float32', normalizeBatch(views, inputs.images), [views.length, 3, size, size]);
        const outputs = await session.run({ [inputs.backbone.inputName]: input });
        logits.set(outputs[logitsOutput].data as Float32Array, start * labelCount);
        onProgress({ task: 'evaluate test', done: start + views.length, total: inputs.testViews.length, unit: 'images' });
      }
      return logits;
    } finally {
      await session.release();
    }
  }

  /** Frees the training session. */
  async release(): Promise<void> {
    await this.session?.release();
    this.session = undefined;
  }

  private async runStep(images: Float32Array, targets: Float32Array, count: number): Promise<{ loss: number; gradients: Map<string, Float32Array> }> {
    const { inputs } = this;
    const size = inputs.images.inputSize;
    const feeds: Record<string, ort.Tensor> = {
      [inputs.backbone.inputName]: new ort.Tensor('float32', images, [count, 3, size, size]),
      [TARGETS_NAME]: new ort.Tensor('float32', targets, [count, inputs.head.labelCount]),
    };
    for (const name of this.parameterNames) {
      feeds[name] = new ort.Tensor('float32', this.parameterValues.get(name)!, this.parameterShapes.get(name)!);
    }

    const outputs = await this.session!.run(feeds);
    const gradients = new Map<string, Float32Array>();
    this.parameterNames.forEach((name, index) => {
      gradients.set(name, outputs[this.gradientNames[index]].data as Float32Array);
    });
    return { loss: (outputs[LOSS_NAME].data as Float32Array)[0], gradients };
  }
}
