// Per-label decision thresholds tuned on a validation part of the training split, which neither the
// optimizer nor early stopping sees.
import type { Random } from '../image/random.js';
import { bestF1Threshold, sigmoid } from '../metrics/index.js';

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

/** Chooses each label's threshold to maximise its F1 on the given logits [count, labels] and targets. */
export function tuneThresholds(logits: Float32Array, targets: Uint8Array, labelCount: number): number[] {
  const count = logits.length / labelCount;
  const thresholds: number[] = [];
  for (let label = 0; label < labelCount; label++) {
    const scores = new Float64Array(count);
    const labelTargets = new Uint8Array(count);
    for (let row = 0; row < count; row++) {
      scores[row] = sigmoid(logits[row * labelCount + label]);
      labelTargets[row] = targets[row * labelCount + label];
    }
    thresholds.push(bestF1Threshold(scores, labelTargets).threshold);
  }
  return thresholds;
}

/** Returns the rows of a row-major matrix at `indices`. */
export function selectRows<T extends Uint8Array | Float32Array>(matrix: T, width: number, indices: readonly number[]): T {
  const rows = new (matrix.constructor as new (length: number) => T)(indices.length * width);
  indices.forEach((index, row) => rows.set(matrix.subarray(index * width, (index + 1) * width), row * width));
  return rows;
}
