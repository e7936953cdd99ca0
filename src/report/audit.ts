// The mislabel finder: pooled backbone features are extracted once, k-fold linear heads are trained on
// them, and every image is scored with the probabilities of the head that did not see it. Images whose
// given labels those out-of-sample probabilities contradict most are the suspects.
import { FeatureExtractor, resolveBackbone } from '../backbone/backbone.js';
import { labelMatrix, loadDataset, type DatasetLayout } from '../data/dataset.js';
import { DataValidationError } from '../data/problems.js';
import { silentLog, silentProgress, type LogCallback, type ProgressCallback } from '../events.js';
import { Random } from '../image/random.js';
import { bceWithLogits, computeMetrics, sigmoid, type MultiLabelMetrics } from '../metrics/index.js';
import { evalViewFeatures } from '../train/adaptation.js';
import { AdamW, defaultAdamW } from '../train/adamw.js';
import { createHead, headGradients, headLogits } from '../train/head.js';
import type { RgbImage } from '../image/decode.js';
import { decodeAll, evalViewDecoder, type ImageSettings } from '../train/images.js';
import { selectRows } from '../train/thresholds.js';
import { readRunConfigSummary } from './runConfig.js';

/** Settings of the cross-validated heads. */
export interface CrossValidationSettings {
  /** Number of folds. Each image is held out in exactly one. */
  folds: number;
  /** Passes over the training part of each fold. */
  epochs: number;
  learningRate: number;
  weightDecay: number;
  batchSize: number;
  /** Seed of the fold assignment, head initialisation and batch order. */
  seed: number;
}

/** Defaults of {@link CrossValidationSettings} other than the seed. */
export const defaultCrossValidation: Omit<CrossValidationSettings, 'seed'> = {
  folds: 5,
  epochs: 30,
  learningRate: 1e-3,
  weightDecay: 0.01,
  batchSize: 64,
};

/** Out-of-sample logits of every image and the fold that held it out. */
export interface CrossValidatedLogits {
  /** Logits [count, labelCount], each from the head of the image's own fold. */
  logits: Float32Array;
  /** Fold index of each image. */
  foldOf: Uint16Array;
}

/**
 * Trains one linear head per fold on the features of the other folds (binary cross-entropy, AdamW,
 * shuffled mini-batches) and returns the logits that each fold's head gives its held-out images.
 */
export function crossValidatedLogits(
  features: Float32Array,
  targets: Uint8Array,
  count: number,
  labelCount: number,
  settings: CrossValidationSettings,
  onProgress: ProgressCallback = silentProgress,
): CrossValidatedLogits {
  const featureSize = features.length / count;
  const random = new Random(settings.seed);
  const foldOf = new Uint16Array(count);
  random.shuffle(Array.from({ length: count }, (_, index) => index)).forEach((image, position) => {
    foldOf[image] = position % settings.folds;
  });

  const logits = new Float32Array(count * labelCount);
  for (let fold = 0; fold < settings.folds; fold++) {
    const trainIndices: number[] = [];
    const heldOut: number[] = [];
    for (let image = 0; image < count; image++) {
      (foldOf[image] === fold ? heldOut : trainIndices).push(image);
    }

    const head = createHead(featureSize, labelCount, random.fork());
    const optimizer = new AdamW({ ...defaultAdamW, learningRate: settings.learningRate, weightDecay: settings.weightDecay });
    const parameters = new Map([
      ['weight', head.weight],
      ['bias', head.bias],
    ]);
    const shuffleRandom = random.fork();
    for (let epoch = 0; epoch < settings.epochs; epoch++) {
      const order = shuffleRandom.shuffle([...trainIndices]);
      for (let start = 0; start < order.length; start += settings.batchSize) {
        const batch = order.slice(start, start + settings.batchSize);
        const gradients = headGradients(head, gatherRows(features, featureSize, batch), gatherRows(targets, labelCount, batch), batch.length);
        optimizer.update(parameters, new Map([
          ['weight', gradients.weight],
          ['bias', gradients.bias],
        ]));
      }
      onProgress({ task: 'audit folds', done: fold * settings.epochs + epoch + 1, total: settings.folds * settings.epochs, unit: 'epochs' });
    }

    const heldOutLogits = headLogits(head, gatherRows(features, featureSize, heldOut), heldOut.length);
    heldOut.forEach((image, row) => {
      logits.set(heldOutLogits.subarray(row * labelCount, (row + 1) * labelCount), image * labelCount);
    });
  }
  return { logits, foldOf };
}

function gatherRows<T extends Float32Array | Uint8Array>(matrix: T, rowLength: number, rows: readonly number[]): T {
  const gathered = new (matrix.constructor as new (length: number) => T)(rows.length * rowLength);
  rows.forEach((row, index) => {
    gathered.set(matrix.subarray(row * rowLength, (row + 1) * rowLength), index * rowLength);
  });
  return gathered;
}

/** One image scored by the audit. */
export interface AuditedImage {
  /** File name as written in the label CSV. */
  file: string;
  /** Absolute path of the image. */
  path: string;
  split: 'train' | 'test';
  /** Given 0/1 label per label. */
  given: Uint8Array;
  /** Out-of-sample probability per label. */
  probabilities: Float32Array;
  /** Disagreement per label: the binary cross-entropy of the given label under the probability, in nats. */
  scores: Float32Array;
  /** Index of the label with the highest score. */
  worstLabel: number;
  /** Score of the worst label, by which images are ranked. */
  score: number;
}

/** Outcome of {@link auditLabels}. */
export interface LabelAudit {
  labels: string[];
  /** Every image of both splits, the most suspicious first. */
  images: AuditedImage[];
  settings: CrossValidationSettings;
  /** Metrics of the out-of-sample probabilities over both splits at threshold 0.5, a check that the heads learnt something. */
  outOfFoldMetrics: MultiLabelMetrics;
}

/**
 * Scores every (image, label) pair by the binary cross-entropy of the given label under the
 * out-of-sample logit, and ranks images by their worst label, highest first. Ties keep the input order.
 */
export function rankByDisagreement(
  items: readonly { file: string; path: string; split: 'train' | 'test' }[],
  targets: Uint8Array,
  logits: Float32Array,
  labelCount: number,
): AuditedImage[] {
  const images = items.map((item, row): AuditedImage => {
    const given = targets.slice(row * labelCount, (row + 1) * labelCount);
    const rowLogits = logits.subarray(row * labelCount, (row + 1) * labelCount);
    const probabilities = rowLogits.map(sigmoid);
    const scores = new Float32Array(labelCount);
    let worstLabel = 0;
    for (let label = 0; label < labelCount; label++) {
      scores[label] = bceWithLogits(rowLogits[label], given[label]);
      if (scores[label] > scores[worstLabel]) {
        worstLabel = label;
      }
    }
    return { ...item, given, probabilities, scores, worstLabel, score: scores[worstLabel] };
  });
  return images.sort((a, b) => b.score - a.score);
}

/** Describes the worst label of a suspect, for example "given sea=1, model says 0.03". */
export function describeSuspect(image: AuditedImage, labels: readonly string[]): string {
  const label = image.worstLabel;
  return `given ${labels[label]}=${image.given[label]}, model says ${formatProbability(image.probabilities[label])}`;
}

/** Formats a probability with two decimals, with more digits near 0 and 1 where two decimals would show 0.00 or 1.00. */
export function formatProbability(probability: number): string {
  if (probability < 0.005) {
    return probability.toPrecision(2);
  }
  if (probability > 0.995) {
    return probability.toFixed(4);
  }
  return probability.toFixed(2);
}

/** Request of {@link auditLabels}: the run, the data folder and the cross-validation settings. */
export interface AuditRequest {
  /** Run folder whose config.json names the backbone, its preprocessing and feature tensor. */
  modelDir: string;
  /** Data folder whose train and test splits are audited. */
  dataDir: string;
  layout?: Partial<DatasetLayout>;
  /** Overrides of the cross-validation settings. The seed defaults to training.seed of the run. */
  crossValidation?: Partial<CrossValidationSettings>;
  threads?: number;
  maxPixels?: number;
}

/** Images decoded and run through the backbone at once, which bounds the memory held by decoded views. */
const extractionChunk = 256;

/**
 * Extracts pooled backbone features of both splits once, trains k-fold heads on them, and ranks every
 * image by how confidently its out-of-sample probabilities contradict its given labels.
 */
export async function auditLabels(request: AuditRequest, hooks: { log?: LogCallback; onProgress?: ProgressCallback } = {}): Promise<LabelAudit> {
  const log = hooks.log ?? silentLog;
  const onProgress = hooks.onProgress ?? silentProgress;
  const config = await readRunConfigSummary(request.modelDir);
  const settings: CrossValidationSettings = { ...defaultCrossValidation, seed: config.training.seed, ...request.crossValidation };
  checkSettings(settings);

  const dataset = await loadDataset(request.dataDir, request.layout);
  for (const warning of dataset.warnings) {
    log('warn', `${warning.file}${warning.line ? `:${warning.line}` : ''}: ${warning.message}`);
  }
  const items = [
    ...dataset.train.items.map((item) => ({ file: item.file, path: item.path, split: 'train' as const })),
    ...dataset.test.items.map((item) => ({ file: item.file, path: item.path, split: 'test' as const })),
  ];
  checkImageCount(items.length, settings.folds, request.dataDir);
  const labels = dataset.train.labels;
  const targets = new Uint8Array([...labelMatrix(dataset.train), ...labelMatrix(dataset.test)]);

  const backbone = await resolveBackbone({
    source: config.backbone.path,
    featureNode: config.backbone.featureName,
    preprocessing: config.backbone.preprocessing,
  });
  if (config.backbone.sha256 && backbone.sha256 !== config.backbone.sha256) {
    log('warn', `backbone ${backbone.path} has changed since the run was trained (SHA-256 ${backbone.sha256.slice(0, 12)}, the run recorded ${config.backbone.sha256.slice(0, 12)}); the audit uses the file as it is now`);
  }
  const images: ImageSettings = {
    inputSize: backbone.preprocessing.inputSize,
    normalization: { mean: backbone.preprocessing.mean, std: backbone.preprocessing.std },
    augment: { rotationDegrees: 0, scale: [1, 1], ratio: [1, 1], flipProbability: 0 },
    decode: { maxPixels: request.maxPixels ?? config.training.maxPixels },
  };

  const extractor = await FeatureExtractor.create(backbone, { threads: request.threads });
  // Images that cannot be decoded are left out with a warning, as `train --on-bad-image skip` leaves them out.
  const decodedRows: number[] = [];
  const chunkFeatures: Float32Array[] = [];
  try {
    log('info', `audit: extracting pooled features (${backbone.featureName}) of ${items.length} images with ${backbone.path}`);
    for (let start = 0; start < items.length; start += extractionChunk) {
      const chunk = items.slice(start, start + extractionChunk);
      const decoded = await decodeAll(chunk.map((item) => item.path), evalViewDecoder(images), 'audit features', images, silentProgress);
      for (const failure of decoded.failures) {
        log('warn', `audit: left out ${failure.message}`);
      }
      const views: RgbImage[] = [];
      decoded.images.forEach((view, index) => {
        if (view) {
          views.push(view);
          decodedRows.push(start + index);
        }
      });
      if (views.length > 0) {
        const progressBefore = decodedRows.length - views.length;
        chunkFeatures.push(
          await evalViewFeatures(extractor, views, images, settings.batchSize, 'audit features', (progress) =>
            onProgress({ ...progress, done: progressBefore + progress.done, total: items.length }),
          ),
        );
      }
    }
  } finally {
    await extractor.release();
  }
  checkImageCount(decodedRows.length, settings.folds, request.dataDir);
  const features = new Float32Array(decodedRows.length * extractor.featureSize);
  let offset = 0;
  for (const part of chunkFeatures) {
    features.set(part, offset);
    offset += part.length;
  }
  const auditedItems = decodedRows.map((row) => items[row]);
  const auditedTargets = selectRows(targets, labels.length, decodedRows);

  log('info', `audit: training ${settings.folds} heads for ${settings.epochs} epochs each`);
  const { logits } = crossValidatedLogits(features, auditedTargets, auditedItems.length, labels.length, settings, onProgress);
  const outOfFoldMetrics = computeMetrics({ logits, targets: auditedTargets, labels });
  log('info', `audit: out-of-fold micro-F1 ${outOfFoldMetrics.microF1.toFixed(4)}, mAP ${outOfFoldMetrics.mAP.toFixed(4)}`);
  return { labels, images: rankByDisagreement(auditedItems, auditedTargets, logits, labels.length), settings, outOfFoldMetrics };
}

/** Throws when fewer images than two per fold can be audited. */
function checkImageCount(count: number, folds: number, dataDir: string): void {
  if (count < folds * 2) {
    throw new DataValidationError([
      { severity: 'error', file: dataDir, message: `the audit needs at least ${folds * 2} decodable images for ${folds} folds but the data folder has ${count}, so add images or lower --folds` },
    ]);
  }
}

function checkSettings(settings: CrossValidationSettings): void {
  const integers: [keyof CrossValidationSettings, number][] = [
    ['folds', 2],
    ['epochs', 1],
    ['batchSize', 1],
  ];
  for (const [name, min] of integers) {
    if (!Number.isInteger(settings[name]) || settings[name] < min) {
      throw new RangeError(`Invalid audit setting: ${name} must be a whole number of at least ${min}, got ${settings[name]}.`);
    }
  }
  if (!(settings.learningRate > 0) || !(settings.weightDecay >= 0)) {
    throw new RangeError(`Invalid audit setting: learningRate must be positive and weightDecay at least 0, got ${settings.learningRate} and ${settings.weightDecay}.`);
  }
}
