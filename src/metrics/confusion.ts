// Confusion counts at a probability threshold, and precision, recall and F1 computed from them.
import { checkScoresAndTargets, checkThreshold } from './validation.js';

/** True positives, false positives, false negatives and true negatives of one label. */
export interface ConfusionCounts {
  tp: number;
  fp: number;
  fn: number;
  tn: number;
}

/** Precision, recall and F1 of one set of confusion counts. */
export interface ClassificationScores {
  precision: number;
  recall: number;
  f1: number;
}

/**
 * Counts predictions against targets, predicting positive when score >= threshold. Scores are
 * probabilities, the threshold must be in [0, 1] and targets must be 0 or 1.
 */
export function confusionCounts(
  scores: ArrayLike<number>,
  targets: ArrayLike<number>,
  threshold: number,
): ConfusionCounts {
  checkScoresAndTargets('confusionCounts', scores, targets);
  checkThreshold('confusionCounts', 'threshold', threshold);
  const counts: ConfusionCounts = { tp: 0, fp: 0, fn: 0, tn: 0 };
  for (let i = 0; i < scores.length; i++) {
    addPrediction(counts, scores[i] >= threshold, targets[i] === 1);
  }
  return counts;
}

/** Adds one prediction to `counts`. */
export function addPrediction(counts: ConfusionCounts, predicted: boolean, positive: boolean): void {
  if (predicted) {
    if (positive) {
      counts.tp++;
    } else {
      counts.fp++;
    }
  } else if (positive) {
    counts.fn++;
  } else {
    counts.tn++;
  }
}

/**
 * Computes precision, recall and F1 with scikit-learn's zero_division=0 rule: precision is 0 when
 * nothing is predicted positive, recall is 0 when no target is positive, and F1 is 0 when TP is 0.
 * F1 is computed as 2TP / (2TP + FP + FN), which equals 2PR / (P + R) and gives bit-identical results
 * for equal ratios, so F1 values can be compared with ===.
 */
export function classificationScores(counts: ConfusionCounts): ClassificationScores {
  const predictedPositives = counts.tp + counts.fp;
  const actualPositives = counts.tp + counts.fn;
  return {
    precision: predictedPositives === 0 ? 0 : counts.tp / predictedPositives,
    recall: actualPositives === 0 ? 0 : counts.tp / actualPositives,
    f1: f1FromCounts(counts.tp, counts.fp, counts.fn),
  };
}

/** Computes F1 as 2TP / (2TP + FP + FN), or 0 when TP is 0. */
export function f1FromCounts(tp: number, fp: number, fn: number): number {
  return tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
}
