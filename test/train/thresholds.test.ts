import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Random } from '../../src/image/random.js';
import { selectRows, splitValidation, tuneThresholds } from '../../src/train/thresholds.js';

function logit(probability: number): number {
  return Math.log(probability / (1 - probability));
}

test('consistent low threshold is adopted', () => {
  // Positives score 0.25-0.45 and negatives 0.02-0.15, so every threshold between 0.15 and 0.25 is
  // perfect and 0.5 misses every positive: tuning pays off on any half of the data.
  const random = new Random(3);
  const count = 80;
  const logits = new Float32Array(count);
  const targets = new Uint8Array(count);
  for (let row = 0; row < count; row++) {
    targets[row] = row % 2;
    logits[row] = logit(targets[row] === 1 ? random.uniform(0.25, 0.45) : random.uniform(0.02, 0.15));
  }

  const [result] = tuneThresholds(logits, targets, 1, new Random(1));

  assert.equal(result.adopted, true);
  assert.ok(result.heldOutGain > 0.5, `held-out gain ${result.heldOutGain}`);
  assert.ok(result.threshold > 0.15, `threshold ${result.threshold}`);
  assert.ok(result.threshold <= 0.25, `threshold ${result.threshold}`);
});

test('threshold without held-out gain is kept', () => {
  // Positives score 0.55-0.95 and negatives 0.05-0.45, except three negatives at 0.3-0.4 labelled
  // positive. A threshold tuned on all images may move down to catch those, but on held-out halves
  // no tuned threshold beats 0.5 on average, so the label keeps 0.5.
  const random = new Random(5);
  const count = 60;
  const logits = new Float32Array(count);
  const targets = new Uint8Array(count);
  for (let row = 0; row < count; row++) {
    targets[row] = row % 2;
    logits[row] = logit(targets[row] === 1 ? random.uniform(0.55, 0.95) : random.uniform(0.05, 0.45));
  }
  for (const row of [0, 2, 4]) {
    targets[row] = 1;
    logits[row] = logit(random.uniform(0.3, 0.4));
  }

  const [result] = tuneThresholds(logits, targets, 1, new Random(2));

  assert.equal(result.adopted, false, `held-out gain ${result.heldOutGain}, candidate ${result.candidate}`);
  assert.equal(result.threshold, 0.5);
  assert.ok(result.heldOutGain <= 0);
});

test('thresholds are tuned per label', () => {
  const random = new Random(8);
  const count = 60;
  const labelCount = 2;
  const logits = new Float32Array(count * labelCount);
  const targets = new Uint8Array(count * labelCount);
  for (let row = 0; row < count; row++) {
    const positive = row % 3 === 0 ? 1 : 0;
    targets[row * 2] = positive;
    targets[row * 2 + 1] = positive;
    // Label 0 separates at about 0.2, label 1 at about 0.8.
    logits[row * 2] = logit(positive ? random.uniform(0.22, 0.3) : random.uniform(0.05, 0.18));
    logits[row * 2 + 1] = logit(positive ? random.uniform(0.85, 0.95) : random.uniform(0.6, 0.78));
  }

  const results = tuneThresholds(logits, targets, labelCount, new Random(4));

  assert.ok(results[0].threshold > 0.18, `label 0 threshold ${results[0].threshold}`);
  assert.ok(results[0].threshold <= 0.22, `label 0 threshold ${results[0].threshold}`);
  assert.ok(results[1].threshold > 0.78, `label 1 threshold ${results[1].threshold}`);
  assert.ok(results[1].threshold <= 0.85, `label 1 threshold ${results[1].threshold}`);
});

test('validation split holds out a fraction', () => {
  const split = splitValidation(100, 0.1, new Random(1));

  assert.equal(split.validation.length, 10);
  assert.equal(split.train.length, 90);
  assert.deepEqual([...split.train, ...split.validation].sort((a, b) => a - b), Array.from({ length: 100 }, (_, index) => index));
});

test('validation split keeps one image', () => {
  assert.equal(splitValidation(5, 0.01, new Random(1)).validation.length, 1);
  assert.equal(splitValidation(5, 0, new Random(1)).validation.length, 0);
});

test('selectRows picks rows in order', () => {
  const matrix = Uint8Array.from([1, 2, 3, 4, 5, 6]);

  assert.deepEqual([...selectRows(matrix, 2, [2, 0])], [5, 6, 1, 2]);
});
