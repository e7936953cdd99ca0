import assert from 'node:assert/strict';
import { test } from 'node:test';

import { classificationScores, confusionCounts, f1FromCounts } from '../../src/metrics/index.js';

test('confusionCounts at a threshold', () => {
  // Predictions at 0.5: [1, 1, 0, 0] against targets [1, 0, 1, 0]: one of each outcome.
  assert.deepEqual(confusionCounts([0.9, 0.5, 0.4, 0.1], [1, 0, 1, 0], 0.5), { tp: 1, fp: 1, fn: 1, tn: 1 });
  // Threshold 0 predicts everything positive: 2 TP, 2 FP.
  assert.deepEqual(confusionCounts([0.9, 0.5, 0.4, 0.1], [1, 0, 1, 0], 0), { tp: 2, fp: 2, fn: 0, tn: 0 });
  // Threshold 1 predicts only scores equal to 1.
  assert.deepEqual(confusionCounts([1, 0.999], [1, 1], 1), { tp: 1, fp: 0, fn: 1, tn: 0 });
});

test('confusionCounts rejects invalid input', () => {
  assert.throws(() => confusionCounts([0.5], [1], 1.5), /threshold is 1\.5, but a threshold is a probability/);
  assert.throws(() => confusionCounts([0.5], [1], NaN), /threshold is NaN/);
  assert.throws(() => confusionCounts([0.5, 0.2], [1], 0.5), /scores has length 2 but targets has length 1/);
  assert.throws(() => confusionCounts([0.5], [2], 0.5), /targets\[0\] is 2/);
});

test('classificationScores from counts', () => {
  // P = 2/(2+1) = 2/3, R = 2/(2+2) = 1/2, F1 = 2·2/(2·2+1+2) = 4/7 = 2PR/(P+R) = (2/3)/(7/6).
  const scores = classificationScores({ tp: 2, fp: 1, fn: 2, tn: 5 });
  assert.equal(scores.precision, 2 / 3);
  assert.equal(scores.recall, 1 / 2);
  assert.equal(scores.f1, 4 / 7);
  assert.ok(Math.abs(scores.f1 - (2 * scores.precision * scores.recall) / (scores.precision + scores.recall)) < 1e-15);
});

test('classificationScores zero division gives 0', () => {
  // Nothing predicted, nothing positive: every ratio is 0/0, reported as 0.
  assert.deepEqual(classificationScores({ tp: 0, fp: 0, fn: 0, tn: 4 }), { precision: 0, recall: 0, f1: 0 });
  // Nothing predicted but 3 positives: precision 0/0 -> 0, recall 0/3 = 0, F1 0.
  assert.deepEqual(classificationScores({ tp: 0, fp: 0, fn: 3, tn: 1 }), { precision: 0, recall: 0, f1: 0 });
  // Only false positives: precision 0/2, recall 0/0 -> 0, F1 0.
  assert.deepEqual(classificationScores({ tp: 0, fp: 2, fn: 0, tn: 2 }), { precision: 0, recall: 0, f1: 0 });
});

test('f1FromCounts is exact for equal ratios', () => {
  // 2·1/(2·1+1+1) = 2/4 and 2·2/(2·2+2+2) = 4/8 are both 1/2, and division rounds each to the same double.
  assert.equal(f1FromCounts(1, 1, 1), 0.5);
  assert.equal(f1FromCounts(1, 0, 2), f1FromCounts(2, 0, 4));
  assert.equal(f1FromCounts(0, 3, 3), 0);
});
