// Training options with their defaults, following the PyTorch tutorial this toolkit generalises.
import type { BackboneRequest } from '../backbone/backbone.js';
import type { DatasetLayout } from '../data/dataset.js';
import type { AugmentOptions } from '../image/augment.js';
import type { BadImagePolicy } from './badImages.js';
import type { MonitoredMetric } from './record.js';

/** Options of {@link train}. */
export interface TrainOptions {
  /** Data folder in the layout train_label.csv + train/, test_label.csv + test/. */
  dataDir: string;
  /** Other file names inside the data folder. */
  layout?: Partial<DatasetLayout>;
  backbone: BackboneRequest;
  /** Run folder to create; it must not exist or be empty. */
  outDir: string;
  /** Maximum epochs of the adaptation phase. */
  epochs: number;
  /** Images per optimizer step. */
  batchSize: number;
  /** AdamW learning rate of the adaptation phase. */
  learningRate: number;
  /** AdamW decoupled weight decay. */
  weightDecay: number;
  /** Early-stopping patience in epochs. */
  patience: number;
  /** Metric for early stopping and best-model selection, on the test split. */
  monitor: MonitoredMetric;
  /** Write a checkpoint every this many epochs. */
  checkpointEvery: number;
  /** Seed of every random choice: head initialisation, order and augmentation. */
  seed: number;
  /** Augmented views per training image computed up front; 0 augments afresh every epoch. */
  cacheViews: number;
  augment: AugmentOptions;
  /** Largest accepted image in pixels (width x height), checked before decoding. */
  maxPixels: number;
  /** Intra-op threads of onnxruntime; defaults to the number of logical cores. */
  threads?: number;
  /** Whether the fine-tuning phase runs after the adaptation phase. */
  finetune: boolean;
  /** Maximum epochs of the fine-tuning phase. */
  finetuneEpochs: number;
  /** AdamW learning rate of the fine-tuning phase. */
  finetuneLearningRate: number;
  /** Early-stopping patience of the fine-tuning phase, in epochs. */
  finetunePatience: number;
  /** Backbone layers that train in the fine-tuning phase: `all`, `last:N`, `last:P%` or `from:NODE`. */
  unfreeze: string;
  /** Images per training-graph run in the fine-tuning phase; the gradients of a batch's micro-batches are summed. */
  microBatchSize: number;
  /** Fraction of the training split held out to tune per-label thresholds; 0 keeps every threshold at 0.5. */
  validationFraction: number;
  /** Policy for images that cannot be decoded: stop before training (`error`) or train without them (`skip`). */
  onBadImage: BadImagePolicy;
  /**
   * Settings of the calling program that training ignores. They are stored in config.json unchanged,
   * so the caller can restore them when it resumes the run.
   */
  callerSettings?: Record<string, string | number | boolean>;
}

/** Defaults of the options that have one. */
export const defaultTrainOptions = {
  epochs: 40,
  batchSize: 64,
  learningRate: 1e-3,
  weightDecay: 0.01,
  patience: 3,
  monitor: 'testCost',
  checkpointEvery: 1,
  seed: 0,
  cacheViews: 4,
  augment: { rotationDegrees: 10, scale: [0.7, 1], ratio: [3 / 4, 4 / 3], flipProbability: 0.5 },
  maxPixels: 100_000_000,
  finetune: true,
  finetuneEpochs: 8,
  finetuneLearningRate: 1e-4,
  finetunePatience: 2,
  unfreeze: 'last:60%',
  microBatchSize: 16,
  validationFraction: 0.1,
  onBadImage: 'error',
} satisfies Omit<TrainOptions, 'dataDir' | 'backbone' | 'outDir'>;

/** Names of the built-in recipes. */
export type RecipeName = 'default' | 'seed';

/**
 * Option values of each recipe. `seed` reproduces the PyTorch tutorial: every layer unfrozen, learning
 * rate 1e-3 then 1e-5, patience 2 then 5, batch 64, fresh augmentation every epoch, and no epoch limit
 * that early stopping would not reach first. Its micro-batches of 8 kept the whole process near 1.5 GB
 * resident with every layer training. Micro-batches of 16 were about 4% faster but peaked at 2.2 GB
 * (MobileNetV2 at 224 px, one epoch per phase on 960 images, 2 threads).
 */
export const recipes: Record<RecipeName, Partial<TrainOptions>> = {
  default: {},
  seed: {
    epochs: 100,
    batchSize: 64,
    learningRate: 1e-3,
    patience: 2,
    cacheViews: 0,
    finetune: true,
    finetuneEpochs: 100,
    finetuneLearningRate: 1e-5,
    finetunePatience: 5,
    unfreeze: 'all',
    microBatchSize: 8,
    validationFraction: 0,
  },
};
