import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Random } from '../../src/image/random.js';
import { crossValidatedLogits, describeSuspect, formatProbability, rankByDisagreement, type LabelAudit } from '../../src/report/audit.js';
import { auditCsv } from '../../src/report/auditOutput.js';
import { computeMetrics } from '../../src/metrics/index.js';

const settings = { folds: 5, epochs: 40, learningRate: 0.05, weightDecay: 0, batchSize: 32, seed: 3 };

/**
 * Builds 200 images with 16 features and 2 labels: label k is 1 when feature k is positive, and the
 * other features are noise. Returns features, true targets and targets with `flips` changed.
 */
function syntheticData(flips: number[]): { features: Float32Array; targets: Uint8Array; given: Uint8Array; count: number } {
  const random = new Random(11);
  const count = 200;
  const featureSize = 16;
  const features = new Float32Array(count * featureSize);
  const targets = new Uint8Array(count * 2);
  for (let image = 0; image < count; image++) {
    for (let feature = 0; feature < featureSize; feature++) {
      features[image * featureSize + feature] = random.uniform(-1, 1);
    }
    for (let label = 0; label < 2; label++) {
      const value = features[image * featureSize + label];
      // Keep the classes apart so that every unchanged label is learnable.
      features[image * featureSize + label] = value + Math.sign(value) * 0.5;
      targets[image * 2 + label] = value > 0 ? 1 : 0;
    }
  }
  const given = targets.slice();
  for (const image of flips) {
    given[image * 2 + (image % 2)] ^= 1;
  }
  return { features, targets, given, count };
}

test('cross-validation finds flipped labels', () => {
  const flips = [3, 50, 97, 120, 181];
  const { features, given, count } = syntheticData(flips);
  const { logits, foldOf } = crossValidatedLogits(features, given, count, 2, settings);
  const items = Array.from({ length: count }, (_, index) => ({ file: `${index}.jpg`, path: `/data/${index}.jpg`, split: 'train' as const }));
  const ranked = rankByDisagreement(items, given, logits, 2);

  assert.deepEqual(ranked.slice(0, 5).map((image) => Number.parseInt(image.file, 10)).sort((a, b) => a - b), flips);
  for (const image of ranked.slice(0, 5)) {
    assert.equal(image.worstLabel, Number.parseInt(image.file, 10) % 2, `${image.file} blames the wrong label`);
  }
  assert.ok(computeMetrics({ logits, targets: given, labels: ['a', 'b'] }).microF1 > 0.9);

  const foldSizes = [0, 0, 0, 0, 0];
  foldOf.forEach((fold) => (foldSizes[fold] += 1));
  assert.deepEqual(foldSizes, [40, 40, 40, 40, 40]);
});

test('cross-validation repeats with its seed', () => {
  const { features, given, count } = syntheticData([]);
  const first = crossValidatedLogits(features, given, count, 2, settings);
  const again = crossValidatedLogits(features, given, count, 2, settings);
  const other = crossValidatedLogits(features, given, count, 2, { ...settings, seed: 4 });
  assert.deepEqual(again.logits, first.logits);
  assert.notDeepEqual(other.foldOf, first.foldOf);
});

test('ranking scores the given label by BCE', () => {
  const items = [
    { file: 'a.jpg', path: '/a.jpg', split: 'train' as const },
    { file: 'b.jpg', path: '/b.jpg', split: 'test' as const },
  ];
  // Image a: given sea=1 with logit -4 (p 0.018). Image b: agrees on both labels.
  const given = Uint8Array.from([0, 1, 1, 0]);
  const logits = Float32Array.from([-3, -4, 5, -5]);
  const ranked = rankByDisagreement(items, given, logits, 2);
  assert.deepEqual(ranked.map((image) => image.file), ['a.jpg', 'b.jpg']);
  assert.equal(ranked[0].worstLabel, 1);
  assert.ok(Math.abs(ranked[0].score - Math.log1p(Math.exp(4))) < 1e-6);
  assert.equal(describeSuspect(ranked[0], ['desert', 'sea']), 'given sea=1, model says 0.02');
});

test('probabilities near 0 and 1 keep digits', () => {
  assert.equal(formatProbability(0.03), '0.03');
  assert.equal(formatProbability(0.00037), '0.00037');
  assert.equal(formatProbability(0.99962), '0.9996');
  assert.equal(formatProbability(0.5), '0.50');
});

test('audit CSV lists every image and label', () => {
  const items = [
    { file: 'a,1.jpg', path: '/a.jpg', split: 'train' as const },
    { file: 'b.jpg', path: '/b.jpg', split: 'test' as const },
  ];
  const given = Uint8Array.from([0, 1, 1, 0]);
  const logits = Float32Array.from([-3, -4, 5, -5]);
  const audit: LabelAudit = {
    labels: ['desert', 'sea'],
    images: rankByDisagreement(items, given, logits, 2),
    settings,
    outOfFoldMetrics: computeMetrics({ logits, targets: given, labels: ['desert', 'sea'] }),
  };
  const lines = auditCsv(audit).trim().split('\n');
  assert.equal(lines[0], 'rank,file,split,label,given,probability,score');
  assert.equal(lines.length, 1 + 2 * 2);
  assert.match(lines[1], /^1,"a,1\.jpg",train,sea,1,0\.0179862,4\.01815$/);
  assert.match(lines[2], /^1,"a,1\.jpg",train,desert,0,/);
  assert.match(lines[3], /^2,b\.jpg,test,/);
});
