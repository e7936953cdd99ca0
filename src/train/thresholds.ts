// Per-label decision thresholds tuned on a validation part of the training split. Neither the optimizer
// nor early stopping uses those images.
import type { Random } from '../image/random.js';
import { bestF1Threshold, f1FromCounts, sigmoid } from '../metrics/index.js';

/** Indices of the images that train and of those held out for threshold tuning. */
export interface ValidationSplit {
  train: number[];
  validation: number[];
}

/**
 * Holds out round(count * fraction) randomly chosen images, at least one when the fraction is positive
 * and the split has two images or more. Both lists come back in ascending order.
 */
export function splitValidation(count: number, fraction: number, random: Random): ValidationSplit {
  const order = random.shuffle(Array.from({ length: count }, (_, index) => index));
  let held = Math.round(count * fraction);
  if (fraction > 0 && count >= 2) {
    held = Math.min(Math.max(held, 1), count - 1);
  }
  const validation = order.slice(0, held).sort((a, b) => a - b);
  const train = order.slice(held).sort((a, b) => a - b);
  return { train, validation };
}

/** Bootstrap resamples whose F1-maximising thresholds are pooled into one per label. */
export const bootstrapResamples = 200;

/** Random halvings of the validation set that test whether tuning a label's threshold helps at all. */
export const crossCheckRounds = 20;

/** A label's tuned threshold, and whether it replaced 0.5. */
export interface TunedThreshold {
  threshold: number;
  /** The threshold tuned on all validation images, adopted or not. */
  candidate: number;
  /** Mean F1 gain over 0.5 on the held-out half when tuned on the other half. */
  heldOutGain: number;
  adopted: boolean;
}

/**
 * Chooses each label's decision threshold from validation logits [count, labels] and targets.
 *
 * The candidate is the median of the F1-maximising thresholds of seeded bootstrap resamples, which
 * varies far less than the single F1-maximising threshold of a small set. A candidate tuned on a few
 * dozen images can still fit their noise. So it is adopted only where tuning pays off on images it was
 * not tuned on: over random halvings, a threshold tuned on one half must beat 0.5 on the other half on
 * average. Otherwise the label keeps 0.5.
 */
export function tuneThresholds(logits: Float32Array, targets: Uint8Array, labelCount: number, random: Random): TunedThreshold[] {
  const count = logits.length / labelCount;
  const results: TunedThreshold[] = [];

  for (let label = 0; label < labelCount; label++) {
    const scores = new Float64Array(count);
    const labelTargets = new Uint8Array(count);
    for (let row = 0; row < count; row++) {
      scores[row] = sigmoid(logits[row * labelCount + label]);
      labelTargets[row] = targets[row * labelCount + label];
    }

    const candidate = bootstrapThreshold(scores, labelTargets, random);
    const heldOutGain = crossCheckGain(scores, labelTargets, random);
    const adopted = heldOutGain > 0;
    results.push({ threshold: adopted ? candidate : 0.5, candidate, heldOutGain, adopted });
  }
  return results;
}

function bootstrapThreshold(scores: Float64Array, targets: Uint8Array, random: Random): number {
  const count = scores.length;
  const resampledScores = new Float64Array(count);
  const resampledTargets = new Uint8Array(count);
  const candidates: number[] = [];
  for (let resample = 0; resample < bootstrapResamples; resample++) {
    for (let row = 0; row < count; row++) {
      const pick = random.integer(count);
      resampledScores[row] = scores[pick];
      resampledTargets[row] = targets[pick];
    }
    candidates.push(bestF1Threshold(resampledScores, resampledTargets).threshold);
  }
  return median(candidates);
}

/** Returns the mean F1 gain over 0.5 of a threshold tuned on one random half and scored on the other. */
function crossCheckGain(scores: Float64Array, targets: Uint8Array, random: Random): number {
  if (scores.length < 4) {
    return 0;
  }
  let gain = 0;
  for (let round = 0; round < crossCheckRounds; round++) {
    const order = random.shuffle(Array.from({ length: scores.length }, (_, index) => index));
    const half = order.length >> 1;
    const parts = [order.slice(0, half), order.slice(half)];
    for (const [tuneOn, scoreOn] of [parts, [parts[1], parts[0]]]) {
      const tuned = bestF1Threshold(pick(scores, tuneOn), pick(targets, tuneOn)).threshold;
      gain += f1At(scores, targets, scoreOn, tuned) - f1At(scores, targets, scoreOn, 0.5);
    }
  }
  return gain / (2 * crossCheckRounds);
}

function pick<T extends Float64Array | Uint8Array>(values: T, indices: readonly number[]): number[] {
  return indices.map((index) => values[index]);
}

function f1At(scores: Float64Array, targets: Uint8Array, indices: readonly number[], threshold: number): number {
  let truePositives = 0;
  let falsePositives = 0;
  let falseNegatives = 0;
  for (const index of indices) {
    const predicted = scores[index] >= threshold;
    if (predicted && targets[index] === 1) {
      truePositives += 1;
    } else if (predicted) {
      falsePositives += 1;
    } else if (targets[index] === 1) {
      falseNegatives += 1;
    }
  }
  return f1FromCounts(truePositives, falsePositives, falseNegatives);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Returns the rows of a row-major matrix at `indices`. */
export function selectRows<T extends Uint8Array | Float32Array>(matrix: T, width: number, indices: readonly number[]): T {
  const rows = new (matrix.constructor as new (length: number) => T)(indices.length * width);
  indices.forEach((index, row) => rows.set(matrix.subarray(index * width, (index + 1) * width), row * width));
  return rows;
}
