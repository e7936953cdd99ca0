// Phase 1, "adaptation": the backbone is frozen and only the linear head trains. Test features are
// computed once. Training features come from freshly augmented views every epoch, or from a fixed
// number of augmented views per image computed up front (`cacheViews`).
import type { FeatureExtractor } from '../backbone/backbone.js';
import type { ProgressCallback } from '../events.js';
import type { RgbImage } from '../image/decode.js';
import type { Random } from '../image/random.js';
import type { AdamW } from './adamw.js';
import type { ParameterSnapshot } from './callbacks.js';
import { headGradients, headLogits, type LinearHead } from './head.js';
import { augmentedBatch, normalizeBatch, type ImageSettings } from './images.js';
import { headBiasName, headWeightName } from './inferenceModel.js';
import type { EpochRunner } from './phase.js';
import type { PhaseName } from './record.js';

/** Everything the adaptation phase works on. */
export interface AdaptationInputs {
  extractor: FeatureExtractor;
  head: LinearHead;
  optimizer: AdamW;
  trainImages: readonly RgbImage[];
  /** Training targets, row-major [trainCount, labels]. */
  trainTargets: Uint8Array;
  /** Test features [testCount, featureSize], computed once from the evaluation views. */
  testFeatures: Float32Array;
  testCount: number;
  images: ImageSettings;
  batchSize: number;
  /** Random stream for the order of training images. */
  shuffleRandom: Random;
  /** Random stream for augmentation. */
  augmentRandom: Random;
  /** Number of augmented views per image to precompute; 0 augments afresh every epoch. */
  cacheViews: number;
}

/** Computes features for views of all images in batches, overlapping augmentation with the backbone. */
export async function extractFeatures(
  extractor: FeatureExtractor,
  count: number,
  batchSize: number,
  makeBatch: (indices: number[]) => Float32Array,
  task: string,
  onProgress: ProgressCallback,
): Promise<Float32Array> {
  const features = new Float32Array(count * extractor.featureSize);
  const batches: number[][] = [];
  for (let start = 0; start < count; start += batchSize) {
    batches.push(Array.from({ length: Math.min(batchSize, count - start) }, (_, offset) => start + offset));
  }

  // Build batch k + 1 in JavaScript while onnxruntime computes batch k on its own threads.
  let pending = batches.length > 0 ? extractor.run(makeBatch(batches[0]), batches[0].length) : undefined;
  for (let index = 0; index < batches.length; index++) {
    let next: Float32Array | undefined;
    try {
      next = index + 1 < batches.length ? makeBatch(batches[index + 1]) : undefined;
    } catch (error) {
      // Settle the backbone run in flight before reporting the error, so it cannot reject unobserved.
      await pending?.catch(() => undefined);
      throw error;
    }
    const batchFeatures = await pending!;
    pending = next ? extractor.run(next, batches[index + 1].length) : undefined;
    features.set(batchFeatures, batches[index][0] * extractor.featureSize);
    onProgress({ task, done: batches[index][batches[index].length - 1] + 1, total: count, unit: 'images' });
  }
  return features;
}

/** Computes features of the evaluation views, in order. */
export async function evalViewFeatures(
  extractor: FeatureExtractor,
  views: readonly RgbImage[],
  images: ImageSettings,
  batchSize: number,
  task: string,
  onProgress: ProgressCallback,
): Promise<Float32Array> {
  return extractFeatures(extractor, views.length, batchSize, (indices) => normalizeBatch(indices.map((index) => views[index]), images), task, onProgress);
}

/** The adaptation phase's epoch runner. */
export class AdaptationRunner implements EpochRunner {
  readonly phase: PhaseName = 'adaptation';
  private cachedViews: Float32Array[] = [];
  /** Epochs trained so far; selects the cached view of the next epoch. */
  epochsTrained = 0;

  constructor(private readonly inputs: AdaptationInputs) {}

  /** Precomputes the cached augmented views, if any were requested. */
  async prepare(onProgress: ProgressCallback): Promise<void> {
    const { inputs } = this;
    for (let view = 0; view < inputs.cacheViews; view++) {
      this.cachedViews.push(await this.augmentedFeatures(`augmented view ${view + 1} of ${inputs.cacheViews}`, onProgress));
    }
  }

  learningRate(): number {
    return this.inputs.optimizer.settings.learningRate;
  }

  parameters(): ParameterSnapshot {
    return new Map([
      [headWeightName, this.inputs.head.weight],
      [headBiasName, this.inputs.head.bias],
    ]);
  }

  async trainEpoch(task: string, onProgress: ProgressCallback): Promise<number> {
    const { inputs } = this;
    const count = inputs.trainImages.length;
    const features =
      this.cachedViews.length > 0 ? this.cachedViews[this.epochsTrained % this.cachedViews.length] : await this.augmentedFeatures(task, onProgress);
    this.epochsTrained += 1;

    const order = inputs.shuffleRandom.shuffle(Array.from({ length: count }, (_, index) => index));
    const { featureSize } = inputs.extractor;
    const labelCount = inputs.head.labelCount;
    let costSum = 0;
    for (let start = 0; start < count; start += inputs.batchSize) {
      const indices = order.slice(start, start + inputs.batchSize);
      const batchFeatures = new Float32Array(indices.length * featureSize);
      const batchTargets = new Uint8Array(indices.length * labelCount);
      indices.forEach((imageIndex, row) => {
        batchFeatures.set(features.subarray(imageIndex * featureSize, (imageIndex + 1) * featureSize), row * featureSize);
        batchTargets.set(inputs.trainTargets.subarray(imageIndex * labelCount, (imageIndex + 1) * labelCount), row * labelCount);
      });

      const gradients = headGradients(inputs.head, batchFeatures, batchTargets, indices.length);
      inputs.optimizer.update(this.parameters(), new Map([
        [headWeightName, gradients.weight],
        [headBiasName, gradients.bias],
      ]));
      costSum += gradients.loss * indices.length;
    }
    return costSum / count;
  }

  async testLogits(): Promise<Float32Array> {
    return headLogits(this.inputs.head, this.inputs.testFeatures, this.inputs.testCount);
  }

  private augmentedFeatures(task: string, onProgress: ProgressCallback): Promise<Float32Array> {
    const { inputs } = this;
    return extractFeatures(
      inputs.extractor,
      inputs.trainImages.length,
      inputs.batchSize,
      (indices) => augmentedBatch(inputs.trainImages, indices, inputs.images, inputs.augmentRandom),
      task,
      onProgress,
    );
  }
}
