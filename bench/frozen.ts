// Throughput of the frozen-backbone path: decoding, augmentation, the backbone forward at batch 64, and
// one whole adaptation epoch on the shared MIML training split.
import { availableParallelism } from 'node:os';
import { FeatureExtractor, resolveBackbone } from '../src/backbone/backbone.js';
import { labelMatrix, loadDataset } from '../src/data/dataset.js';
import { defaultAugmentOptions } from '../src/image/augment.js';
import { Random } from '../src/image/random.js';
import { AdaptationRunner } from '../src/train/adaptation.js';
import { AdamW, defaultAdamW } from '../src/train/adamw.js';
import { createHead } from '../src/train/head.js';
import { augmentedBatch, loadTrainImages, type ImageSettings } from '../src/train/images.js';
import { sharedBackbone, sharedData, timeSeconds } from './common.js';

/** Measures images per second of each step; returns the figures by name. */
export async function benchFrozen(threads = availableParallelism()): Promise<Record<string, number>> {
  const dataset = await loadDataset(sharedData);
  const backbone = await resolveBackbone({ source: sharedBackbone, preprocessing: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] } });
  const images: ImageSettings = {
    inputSize: backbone.preprocessing.inputSize,
    normalization: { mean: backbone.preprocessing.mean, std: backbone.preprocessing.std },
    augment: defaultAugmentOptions,
    decode: {},
  };
  const paths = dataset.train.items.map((item) => item.path);

  let trainImages: Awaited<ReturnType<typeof loadTrainImages>> = [];
  const decodeSeconds = await timeSeconds(async () => {
    trainImages = await loadTrainImages(paths, images);
  });

  const random = new Random(1);
  const augmentCount = 256;
  const augmentSeconds = await timeSeconds(() => {
    for (let start = 0; start < augmentCount; start += 64) {
      augmentedBatch(trainImages, Array.from({ length: 64 }, (_, index) => start + index), images, random);
    }
  });

  const extractor = await FeatureExtractor.create(backbone, { threads });
  const batch = augmentedBatch(trainImages, Array.from({ length: 64 }, (_, index) => index), images, random);
  await extractor.run(batch, 64);
  const forwardBatches = 5;
  const forwardSeconds = await timeSeconds(async () => {
    for (let index = 0; index < forwardBatches; index++) {
      await extractor.run(batch, 64);
    }
  });

  const head = createHead(extractor.featureSize, dataset.train.labels.length, random.fork());
  const runner = new AdaptationRunner({
    extractor,
    head,
    optimizer: new AdamW({ ...defaultAdamW, learningRate: 1e-3 }),
    trainImages,
    trainTargets: labelMatrix(dataset.train),
    testFeatures: new Float32Array(0),
    testCount: 0,
    images,
    batchSize: 64,
    shuffleRandom: random.fork(),
    augmentRandom: random.fork(),
    cacheViews: 0,
  });
  const epochSeconds = await timeSeconds(() => runner.trainEpoch('bench epoch', () => {}));
  await extractor.release();

  return {
    threads,
    decodeImagesPerSecond: paths.length / decodeSeconds,
    augmentImagesPerSecond: augmentCount / augmentSeconds,
    forwardBatch64ImagesPerSecond: (forwardBatches * 64) / forwardSeconds,
    frozenEpochImagesPerSecond: paths.length / epochSeconds,
    frozenEpochSeconds: epochSeconds,
  };
}
