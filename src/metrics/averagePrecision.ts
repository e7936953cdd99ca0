// Average precision and the precision-recall curve, with tied scores grouped as scikit-learn does.
import { forEachScoreThreshold, sortIndicesByScoreDescending } from './ranking.js';
import { checkScoresAndTargets } from './validation.js';

/** Precision and recall at each distinct score, highest score first. */
export interface PrecisionRecallCurve {
  /** Distinct scores in descending order; point k predicts positive when score >= thresholds[k]. */
  thresholds: number[];
  precision: number[];
  recall: number[];
}

/**
 * Computes average precision as scikit-learn's average_precision_score defines it:
 * AP = Σ_n (R_n - R_{n-1}) P_n over the distinct scores in descending order, with R_0 = 0. Tied scores
 * form one threshold, so the result does not depend on the order of tied items.
 *
 * Returns NaN when no target is positive, because recall is undefined then. Targets must be 0 or 1.
 * Sorting makes it O(N log N).
 */
export function averagePrecision(scores: ArrayLike<number>, targets: ArrayLike<number>): number {
  const positives = checkScoresAndTargets('averagePrecision', scores, targets);
  return averagePrecisionUnchecked(scores, targets, positives, new Uint32Array(scores.length));
}

/**
 * Computes averagePrecision without input checks, using `order` (length N) as scratch space.
 * `positives` is the number of targets equal to 1.
 */
export function averagePrecisionUnchecked(
  scores: ArrayLike<number>,
  targets: ArrayLike<number>,
  positives: number,
  order: Uint32Array,
): number {
  if (positives === 0) {
    return NaN;
  }
  sortIndicesByScoreDescending(scores, order);
  // R_n - R_{n-1} = (TP_n - TP_{n-1}) / positives, so the division by `positives` moves out of the sum.
  let sum = 0;
  let previousTruePositives = 0;
  forEachScoreThreshold(scores, targets, order, (_threshold, truePositives, falsePositives) => {
    const precision = truePositives / (truePositives + falsePositives);
    sum += (truePositives - previousTruePositives) * precision;
    previousTruePositives = truePositives;
  });
  return sum / positives;
}

/**
 * Computes precision and recall for each distinct score used as threshold, highest first. Unlike
 * scikit-learn's precision_recall_curve it adds no final (recall 0, precision 1) point, and when no
 * target is positive every recall is 0 rather than NaN. Targets must be 0 or 1.
 */
export function precisionRecallCurve(scores: ArrayLike<number>, targets: ArrayLike<number>): PrecisionRecallCurve {
  const positives = checkScoresAndTargets('precisionRecallCurve', scores, targets);
  const order = sortIndicesByScoreDescending(scores, new Uint32Array(scores.length));
  const curve: PrecisionRecallCurve = { thresholds: [], precision: [], recall: [] };
  forEachScoreThreshold(scores, targets, order, (threshold, truePositives, falsePositives) => {
    curve.thresholds.push(threshold);
    curve.precision.push(truePositives / (truePositives + falsePositives));
    curve.recall.push(positives === 0 ? 0 : truePositives / positives);
  });
  return curve;
}
