import assert from 'node:assert/strict';
import { test } from 'node:test';

import { bestF1Threshold, confusionCounts, f1FromCounts } from '../../src/metrics/index.js';

function assertClose(actual: number, expected: number, tolerance = 1e-12): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `expected ${expected}, got ${actual}`);
}

/** F1 when predicting positive for score >= threshold, counted directly. */
function f1AtThreshold(scores: number[], targets: number[], threshold: number): number {
  const counts = confusionCounts(scores, targets, threshold);
  return f1FromCounts(counts.tp, counts.fp, counts.fn);
}

test('bestF1Threshold picks the midpoint', () => {
  // Scores 0.9 0.8 0.7 0.3 0.2 with targets 1 0 1 1 0, so 3 positives. F1 = 2TP / (TP + FP + 3):
  //   predict none         F1 0             threshold (0.9+1)/2 = 0.95
  //   top 1: TP1 FP0       2/4 = 0.5        threshold 0.85
  //   top 2: TP1 FP1       2/5 = 0.4        threshold 0.75
  //   top 3: TP2 FP1       4/6 = 0.667      threshold 0.5
  //   top 4: TP3 FP1       6/7 = 0.857      threshold (0.3+0.2)/2 = 0.25
  //   all 5: TP3 FP2       6/8 = 0.75       threshold 0.2/2 = 0.1
  const best = bestF1Threshold([0.9, 0.8, 0.7, 0.3, 0.2], [1, 0, 1, 1, 0]);
  assertClose(best.threshold, 0.25);
  assert.equal(best.f1, 6 / 7);
});

test('bestF1Threshold tie goes closest to 0.5', () => {
  // Scores 0.9 0.7 0.45 0.2 with targets 1 0 0 1, so 2 positives. F1 = 2TP / (TP + FP + 2):
  //   top 1: TP1 FP0  2/3  threshold 0.8
  //   top 2: TP1 FP1  2/4  threshold 0.575
  //   top 3: TP1 FP2  2/5  threshold 0.325
  //   all 4: TP2 FP2  4/6  threshold 0.1
  // 2/3 ties with 4/6; 0.8 is 0.3 from 0.5 and 0.1 is 0.4 away, so 0.8 wins.
  const best = bestF1Threshold([0.9, 0.7, 0.45, 0.2], [1, 0, 0, 1]);
  assertClose(best.threshold, 0.8);
  assert.equal(best.f1, 2 / 3);
});

test('bestF1Threshold equal distance picks higher', () => {
  // No positives, so every F1 is 0. Candidates: 0.9375, 0.6875, 0.3125, 0.0625 (all exact in binary).
  // 0.6875 and 0.3125 are both 0.1875 from 0.5, and the higher one wins.
  assert.deepEqual(bestF1Threshold([0.875, 0.5, 0.125], [0, 0, 0]), { threshold: 0.6875, f1: 0 });
});

test('bestF1Threshold without positives prefers 0.5', () => {
  // Every F1 is 0; candidates 0.9, 0.5, 0.1 and (0.8+0.2)/2 = 0.5 is closest to 0.5.
  assert.deepEqual(bestF1Threshold([0.8, 0.2], [0, 0]), { threshold: 0.5, f1: 0 });
  assert.deepEqual(bestF1Threshold([], []), { threshold: 0.5, f1: 0 });
});

test('bestF1Threshold with a score of 1', () => {
  // Predicting nothing is impossible with a threshold <= 1 when a score is 1, so only the splits remain:
  //   top 1: TP1 FP0, F1 2/(1+0+1) = 1 at threshold (1+0.4)/2 = 0.7.
  const best = bestF1Threshold([1, 0.4], [1, 0]);
  assertClose(best.threshold, 0.7);
  assert.equal(best.f1, 1);
});

test('bestF1Threshold between adjacent doubles', () => {
  // 0.25 + 2^-54 is the double just above 0.25. Their sum 0.5 + 2^-54 lies halfway between two doubles
  // and rounds to 0.5, so the computed midpoint is 0.25, and that threshold would also predict the negative.
  // The threshold falls back to the higher score, which still separates the two.
  const upper = 0.25 + 2 ** -54;
  const best = bestF1Threshold([upper, 0.25], [1, 0]);
  assert.equal((upper + 0.25) / 2, 0.25);
  assert.equal(best.threshold, upper);
  assert.equal(best.f1, 1);
  assert.ok(0.25 < best.threshold);
});

test('bestF1Threshold all positive and ties', () => {
  // Scores 0.6 0.6 0.2 with targets 1 1 1: top 2 (tied) gives 4/5, all 3 give 6/6 = 1 at 0.2/2 = 0.1.
  assert.deepEqual(bestF1Threshold([0.6, 0.6, 0.2], [1, 1, 1]), { threshold: 0.1, f1: 1 });
  // A score of 0 predicted positive needs threshold 0: 0/2 = 0.
  assert.deepEqual(bestF1Threshold([0, 0], [1, 1]), { threshold: 0, f1: 1 });
});

test('bestF1Threshold matches exhaustive search', () => {
  let seed = 12345;
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  for (let round = 0; round < 40; round++) {
    const length = 1 + Math.floor(random() * 30);
    const scores = Array.from({ length }, () => Math.round(random() * 20) / 20);
    const targets = Array.from({ length }, () => (random() < 0.35 ? 1 : 0));
    // Every reachable prediction set is "score >= s" for a score s, or nothing, whose F1 is 0.
    let expected = 0;
    for (const score of scores) {
      expected = Math.max(expected, f1AtThreshold(scores, targets, score));
    }
    const best = bestF1Threshold(scores, targets);
    assert.equal(best.f1, expected);
    assert.equal(f1AtThreshold(scores, targets, best.threshold), best.f1);
    assert.ok(best.threshold >= 0, `threshold ${best.threshold} is below 0`);
    assert.ok(best.threshold <= 1, `threshold ${best.threshold} is above 1`);
  }
});

test('bestF1Threshold rejects invalid scores', () => {
  assert.throws(() => bestF1Threshold([0.5, 1.2], [1, 0]), /scores\[1\] is 1\.2, but scores must be probabilities/);
  assert.throws(() => bestF1Threshold([-3], [1]), /apply sigmoid to logits first/);
  assert.throws(() => bestF1Threshold([0.5], [1, 0]), /scores has length 1 but targets has length 2/);
  assert.throws(() => bestF1Threshold([0.5], [-1]), /targets\[0\] is -1/);
});
