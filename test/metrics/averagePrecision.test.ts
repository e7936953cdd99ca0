import assert from 'node:assert/strict';
import { test } from 'node:test';

import { averagePrecision, precisionRecallCurve } from '../../src/metrics/index.js';
import { seededRandom } from '../support/seededRandom.js';

function assertClose(actual: number, expected: number, tolerance = 1e-12): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `expected ${expected}, got ${actual}`);
}

/**
 * Average precision by its per-positive form, in O(N²): the mean over positive items of the
 * precision at threshold = that item's score, counting every item with score >= threshold.
 */
function bruteForceAveragePrecision(scores: number[], targets: number[]): number {
  let sum = 0;
  let positives = 0;
  for (let i = 0; i < scores.length; i++) {
    if (targets[i] !== 1) {
      continue;
    }
    positives++;
    let predicted = 0;
    let truePositives = 0;
    for (let j = 0; j < scores.length; j++) {
      if (scores[j] >= scores[i]) {
        predicted++;
        truePositives += targets[j];
      }
    }
    sum += truePositives / predicted;
  }
  return sum / positives;
}

test('averagePrecision without ties', () => {
  // Descending: 0.9 (+) P=1/1 R=1/2; 0.8 (-) P=1/2 R=1/2; 0.7 (+) P=2/3 R=1; 0.6 (-) P=2/4 R=1.
  // AP = (1/2)(1) + 0 + (1/2)(2/3) + 0 = 1/2 + 1/3 = 5/6.
  assertClose(averagePrecision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]), 5 / 6);
  // Shuffled input gives the same ranking and the same AP.
  assertClose(averagePrecision([0.6, 0.7, 0.9, 0.8], [0, 1, 1, 0]), 5 / 6);
});

test('averagePrecision groups tied scores', () => {
  // 0.9 (-) P=0/1 R=0; tie at 0.5 contains one + and one -: P=1/3 R=1/2; 0.1 (+) P=2/4 R=1.
  // AP = 0 + (1/2)(1/3) + (1/2)(1/2) = 1/6 + 1/4 = 5/12.
  // Ranking the tied positive first would give (1/2)(1/2) + (1/2)(1/2) = 1/2 instead.
  assertClose(averagePrecision([0.9, 0.5, 0.5, 0.1], [0, 1, 0, 1]), 5 / 12);
  // Same items with the tied negative listed first: still 5/12.
  assertClose(averagePrecision([0.9, 0.5, 0.5, 0.1], [0, 0, 1, 1]), 5 / 12);
});

test('averagePrecision with all scores tied', () => {
  // One threshold predicts all three: P=1/3 R=1, so AP = 1 · 1/3 = the prevalence 1/3.
  assertClose(averagePrecision([0.5, 0.5, 0.5], [0, 1, 0]), 1 / 3);
});

test('averagePrecision of perfect and worst rankings', () => {
  // Positives ranked first: P=1 at each recall step, AP = 1.
  assert.equal(averagePrecision([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0]), 1);
  // Positives ranked last: 0.9 (-), 0.8 (-), then 0.3 (+) P=1/3 R=1/2 and 0.1 (+) P=2/4 R=1.
  // AP = (1/2)(1/3) + (1/2)(2/4) = 1/6 + 1/4 = 5/12.
  assertClose(averagePrecision([0.9, 0.8, 0.3, 0.1], [0, 0, 1, 1]), 5 / 12);
});

test('averagePrecision without positives is NaN', () => {
  // Recall = TP / 0 is undefined at every threshold.
  assert.ok(Number.isNaN(averagePrecision([0.9, 0.2], [0, 0])));
  assert.ok(Number.isNaN(averagePrecision([], [])));
});

test('averagePrecision accepts logits and typed arrays', () => {
  // AP depends only on the ranking, so logits give the same 5/6 as the first case.
  assertClose(averagePrecision(Float32Array.from([3, 1, -0.5, -2]), Uint8Array.from([1, 0, 1, 0])), 5 / 6);
  // Infinite scores still sort: +Infinity (+) P=1 R=1/2; -Infinity (+) P=2/3 R=1. AP = 1/2 + 1/3.
  assertClose(averagePrecision([Infinity, 0, -Infinity], [1, 0, 1]), 5 / 6);
});

test('averagePrecision matches brute force on random ties', () => {
  const random = seededRandom(7);
  for (let round = 0; round < 50; round++) {
    const length = 1 + Math.floor(random() * 40);
    // One decimal place makes ties common.
    const scores = Array.from({ length }, () => Math.round(random() * 10) / 10);
    const targets = Array.from({ length }, () => (random() < 0.4 ? 1 : 0));
    if (!targets.includes(1)) {
      targets[0] = 1;
    }
    assertClose(averagePrecision(scores, targets), bruteForceAveragePrecision(scores, targets));
  }
});

test('averagePrecision rejects invalid input', () => {
  assert.throws(() => averagePrecision([0.1, 0.2], [1]), /scores has length 2 but targets has length 1/);
  assert.throws(() => averagePrecision([0.1, 0.2], [1, 0.5]), /targets\[1\] is 0\.5, but targets must be 0 or 1/);
  assert.throws(() => averagePrecision([0.1, NaN], [1, 0]), /scores\[1\] is NaN/);
});

test('precisionRecallCurve with ties', () => {
  // Same items as the tie case: thresholds 0.9, 0.5, 0.1 give
  // TP/FP = 0/1, 1/2, 2/2, so P = 0, 1/3, 1/2 and R = 0/2, 1/2, 2/2.
  const curve = precisionRecallCurve([0.9, 0.5, 0.5, 0.1], [0, 1, 0, 1]);
  assert.deepEqual(curve.thresholds, [0.9, 0.5, 0.1]);
  assert.deepEqual(curve.precision, [0, 1 / 3, 1 / 2]);
  assert.deepEqual(curve.recall, [0, 1 / 2, 1]);
});

test('precisionRecallCurve sums to averagePrecision', () => {
  const scores = [0.2, 0.9, 0.4, 0.4, 0.7, 0.1, 0.7];
  const targets = [1, 1, 0, 1, 0, 0, 1];
  const curve = precisionRecallCurve(scores, targets);
  // Distinct thresholds 0.9, 0.7, 0.4, 0.2, 0.1, in descending order.
  assert.deepEqual(curve.thresholds, [0.9, 0.7, 0.4, 0.2, 0.1]);
  let sum = 0;
  let previousRecall = 0;
  for (let k = 0; k < curve.thresholds.length; k++) {
    sum += (curve.recall[k] - previousRecall) * curve.precision[k];
    previousRecall = curve.recall[k];
  }
  assertClose(sum, averagePrecision(scores, targets));
});

test('precisionRecallCurve without positives', () => {
  // Recall is 0 by convention; precision is 0 because every predicted positive is false.
  const curve = precisionRecallCurve([0.8, 0.3], [0, 0]);
  assert.deepEqual(curve, { thresholds: [0.8, 0.3], precision: [0, 0], recall: [0, 0] });
  assert.deepEqual(precisionRecallCurve([], []), { thresholds: [], precision: [], recall: [] });
});
