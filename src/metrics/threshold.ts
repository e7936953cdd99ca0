// Tuning of a per-label probability threshold for maximum F1.
import { f1FromCounts } from './confusion.js';
import { forEachScoreThreshold, sortIndicesByScoreDescending } from './ranking.js';
import { checkScoresAndTargets } from './validation.js';

/** A probability threshold and the F1 it reaches on the scores it was tuned on. */
export interface F1Threshold {
  threshold: number;
  f1: number;
}

/**
 * Finds the probability threshold that maximises F1 when predicting positive for score >= threshold.
 *
 * Each distinct score splits the items into a predicted-positive top and a predicted-negative rest.
 * For each split the threshold is the midpoint between the lowest predicted-positive score and the
 * next lower score, which leaves the largest margin on both sides. The split that predicts everything
 * positive uses half the lowest score, and the split that predicts nothing uses the midpoint between
 * the top score and 1 (it is skipped when the top score is 1). When two rounded neighbours have no midpoint, the higher score is the threshold.
 * Among splits with equal F1 the threshold closest to 0.5 wins, and of two equally close ones the
 * higher. With no positive target every F1 is 0, so that rule picks the threshold.
 *
 * Scores must be probabilities in [0, 1] and targets 0 or 1. Pass sigmoid(logit) from this module, as
 * computeMetrics uses, so that the threshold splits the images the same way there. Returns
 * { threshold: 0.5, f1: 0 } for empty input. Sorting makes it O(N log N).
 */
export function bestF1Threshold(scores: ArrayLike<number>, targets: ArrayLike<number>): F1Threshold {
  const positives = checkScoresAndTargets('bestF1Threshold', scores, targets);
  for (let i = 0; i < scores.length; i++) {
    if (!(scores[i] >= 0 && scores[i] <= 1)) {
      throw new Error(
        `bestF1Threshold: scores[${i}] is ${scores[i]}, but scores must be probabilities from 0 to 1; apply sigmoid to logits first.`,
      );
    }
  }
  if (scores.length === 0) {
    return { threshold: 0.5, f1: 0 };
  }

  const order = sortIndicesByScoreDescending(scores, new Uint32Array(scores.length));
  const best: F1Threshold = { threshold: NaN, f1: -1 };
  const consider = (threshold: number, f1: number): void => {
    if (f1 > best.f1 || (f1 === best.f1 && isPreferredThreshold(threshold, best.threshold))) {
      best.threshold = threshold;
      best.f1 = f1;
    }
  };

  // Predicting nothing needs a threshold above the top score, which exists only if that score is below 1.
  const topScore = scores[order[0]];
  if (topScore < 1) {
    consider(thresholdBetween(topScore, 1), 0);
  }

  // A split's threshold depends on the next lower score, so each split is scored when the next group arrives.
  let pendingScore = NaN;
  let pendingF1 = 0;
  forEachScoreThreshold(scores, targets, order, (score, truePositives, falsePositives) => {
    if (!Number.isNaN(pendingScore)) {
      consider(thresholdBetween(score, pendingScore), pendingF1);
    }
    pendingScore = score;
    pendingF1 = f1FromCounts(truePositives, falsePositives, positives - truePositives);
  });
  consider(pendingScore / 2, pendingF1);

  return best;
}

/** Returns a threshold t with lower < t <= upper: the midpoint, or `upper` when rounding leaves no room. */
function thresholdBetween(lower: number, upper: number): number {
  const midpoint = (lower + upper) / 2;
  return midpoint > lower ? midpoint : upper;
}

/** Prefers the threshold closer to 0.5, and the higher one when both are equally close. */
function isPreferredThreshold(candidate: number, current: number): boolean {
  const candidateDistance = Math.abs(candidate - 0.5);
  const currentDistance = Math.abs(current - 0.5);
  return candidateDistance < currentDistance || (candidateDistance === currentDistance && candidate > current);
}
