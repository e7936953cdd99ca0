import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import type { DatasetSplit } from '../../src/data/dataset.js';
import { computeMetrics } from '../../src/metrics/index.js';
import {
  cooccurrenceMatrix,
  drawPrecisionRecallCurves,
  labelColumn,
  precisionRecallPanelSize,
  predictionMatrix,
  targetsInLabelOrder,
} from '../../src/report/labelAnalysis.js';

function split(labels: string[], rows: number[][]): DatasetSplit {
  return {
    name: 'test',
    csvPath: '/data/test_label.csv',
    imageDir: '/data/test',
    labels,
    items: rows.map((targets, index) => ({ file: `${index}.jpg`, path: `/data/test/${index}.jpg`, targets: Uint8Array.from(targets) })),
  };
}

test('co-occurrence counts label pairs', () => {
  // Three labels a, b, c over four images: {a, b}, {a}, {b, c}, {}.
  const matrix = Uint8Array.from([1, 1, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0]);
  assert.deepEqual(cooccurrenceMatrix(matrix, 3), [
    [2, 1, 0],
    [1, 2, 1],
    [0, 1, 1],
  ]);
});

test('predictions use each label threshold', () => {
  const probabilities = Float32Array.from([0.5, 0.5, 0.49, 0.9, 0.2, 0.7]);
  assert.deepEqual([...predictionMatrix(probabilities, [0.5, 0.8, 0.1])], [1, 0, 1, 1, 0, 1]);
});

test('targets follow the model label order', () => {
  const targets = targetsInLabelOrder(split(['b', 'c', 'a'], [[1, 0, 0], [0, 1, 1]]), ['a', 'b', 'c']);
  assert.deepEqual([...targets], [0, 1, 0, 1, 0, 1]);
});

test('targets reject a missing label', () => {
  assert.throws(() => targetsInLabelOrder(split(['a', 'b'], [[1, 0]]), ['a', 'b', 'sea']), {
    name: 'LabelMismatchError',
    message: /\/data\/test_label\.csv has the labels a, b but the model predicts a, b, sea/,
  });
});

test('label column picks one label', () => {
  assert.deepEqual([...labelColumn(Float32Array.from([1, 2, 3, 4, 5, 6]), 3, 1)], [2, 5]);
});

test('precision-recall picture has a panel per label', async () => {
  const labels = ['desert', 'mountains', 'sea', 'sunset', 'trees'];
  const count = 40;
  const targets = new Uint8Array(count * labels.length);
  const logits = new Float32Array(count * labels.length);
  for (let index = 0; index < targets.length; index++) {
    targets[index] = (index * 7) % 3 === 0 ? 1 : 0;
    logits[index] = (targets[index] === 1 ? 1 : -1) + Math.sin(index);
  }
  const probabilities = logits.map((logit) => 1 / (1 + Math.exp(-logit)));
  const metrics = computeMetrics({ logits, targets, labels });
  const png = await drawPrecisionRecallCurves(probabilities, targets, labels, metrics.perLabel, labels.map(() => 0.5));
  const metadata = await sharp(png).metadata();
  assert.equal(metadata.format, 'png');
  assert.equal(metadata.width, 3 * precisionRecallPanelSize.width);
  assert.equal(metadata.height, 2 * precisionRecallPanelSize.height);
});
