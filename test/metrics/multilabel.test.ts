import assert from 'node:assert/strict';
import { test } from 'node:test';

import { computeMetrics, confusionCounts, sigmoid } from '../../src/metrics/index.js';

function assertClose(actual: number, expected: number, tolerance = 1e-12): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `expected ${expected}, got ${actual}`);
}

/** softplus(x) = log(1 + e^x): the BCE is softplus(-x) for target 1 and softplus(x) for target 0. */
function softplus(x: number): number {
  return Math.log1p(Math.exp(x));
}

// Four images by three labels. With threshold 0.5 a label is predicted when its logit >= 0
// (σ(0) = 0.5 counts as positive).
//            logits a  b  c     targets a b c    predicted a b c
//   image 0:         2 -1  0            1 0 0              1 0 1   (c is FP)
//   image 1:         1  1 -2            1 0 0              1 1 0   (b is FP)
//   image 2:        -1  2 -1            0 1 0              0 1 0   (exact)
//   image 3:        -2 -1  1            1 1 0              0 0 1   (a FN, b FN, c FP)
const labels = ['a', 'b', 'c'];
const logits = Float32Array.from([2, -1, 0, 1, 1, -2, -1, 2, -1, -2, -1, 1]);
const targets = Uint8Array.from([1, 0, 0, 1, 0, 0, 0, 1, 0, 1, 1, 0]);

test('computeMetrics per-label counts and scores', () => {
  const { perLabel } = computeMetrics({ logits, targets, labels });

  // a: predicted 1 1 0 0, targets 1 1 0 1 -> TP2 FP0 FN1 TN1. P = 2/2, R = 2/3, F1 = 4/(4+0+1) = 0.8.
  assert.deepEqual(
    { tp: perLabel.a.tp, fp: perLabel.a.fp, fn: perLabel.a.fn, tn: perLabel.a.tn, support: perLabel.a.support },
    { tp: 2, fp: 0, fn: 1, tn: 1, support: 3 },
  );
  assert.equal(perLabel.a.precision, 1);
  assert.equal(perLabel.a.recall, 2 / 3);
  assert.equal(perLabel.a.f1, 0.8);

  // b: predicted 0 1 1 0, targets 0 0 1 1 -> TP1 FP1 FN1 TN1. P = 1/2, R = 1/2, F1 = 2/(2+1+1) = 0.5.
  assert.deepEqual(
    { tp: perLabel.b.tp, fp: perLabel.b.fp, fn: perLabel.b.fn, tn: perLabel.b.tn, support: perLabel.b.support },
    { tp: 1, fp: 1, fn: 1, tn: 1, support: 2 },
  );
  assert.equal(perLabel.b.precision, 0.5);
  assert.equal(perLabel.b.recall, 0.5);
  assert.equal(perLabel.b.f1, 0.5);

  // c: predicted 1 0 0 1, no positive target -> TP0 FP2 FN0 TN2. P = 0/2, R = 0/0 -> 0, F1 0.
  assert.deepEqual(
    { tp: perLabel.c.tp, fp: perLabel.c.fp, fn: perLabel.c.fn, tn: perLabel.c.tn, support: perLabel.c.support },
    { tp: 0, fp: 2, fn: 0, tn: 2, support: 0 },
  );
  assert.equal(perLabel.c.precision, 0);
  assert.equal(perLabel.c.recall, 0);
  assert.equal(perLabel.c.f1, 0);
});

test('computeMetrics average precision and mAP', () => {
  const metrics = computeMetrics({ logits, targets, labels });

  // a ranked by logit: 2 (+) P1 R1/3; 1 (+) P1 R2/3; -1 (-); -2 (+) P3/4 R1.
  // AP = (1/3)(1) + (1/3)(1) + (1/3)(3/4) = 2/3 + 1/4 = 11/12.
  assertClose(metrics.perLabel.a.ap, 11 / 12);
  // b ranked: 2 (+) P1 R1/2; 1 (-); tie at -1 with one + and one -: P2/4 R1.
  // AP = (1/2)(1) + (1/2)(1/2) = 3/4.
  assertClose(metrics.perLabel.b.ap, 3 / 4);
  // c has no positive target, so its AP is NaN and mAP leaves it out: (11/12 + 3/4) / 2 = 5/6.
  assert.ok(Number.isNaN(metrics.perLabel.c.ap));
  assertClose(metrics.mAP, 5 / 6);
});

test('computeMetrics summary metrics', () => {
  const metrics = computeMetrics({ logits, targets, labels });

  // Summed counts: TP 2+1+0 = 3, FP 0+1+2 = 3, FN 1+1+0 = 2, TN 1+1+2 = 4.
  // micro P = 3/6, micro R = 3/5, micro F1 = 6/(6+3+2) = 6/11.
  assert.equal(metrics.microPrecision, 0.5);
  assert.equal(metrics.microRecall, 0.6);
  assertClose(metrics.microF1, 6 / 11);
  // macro F1 = (0.8 + 0.5 + 0) / 3 = 1.3/3, with c's F1 of 0 included.
  assertClose(metrics.macroF1, 1.3 / 3);
  // Only image 2 is predicted exactly: 1/4.
  assert.equal(metrics.exactMatch, 0.25);
  // Wrong entries = FP + FN = 5 of 12.
  assertClose(metrics.hammingLoss, 5 / 12);
});

test('computeMetrics binary cross-entropy', () => {
  const metrics = computeMetrics({ logits, targets, labels });
  const s = softplus;

  // a: (x=2,t=1) s(-2), (1,1) s(-1), (-1,0) s(-1), (-2,1) s(2), mean of 4.
  assertClose(metrics.perLabel.a.bce, (s(-2) + 2 * s(-1) + s(2)) / 4);
  // b: (-1,0) s(-1), (1,0) s(1), (2,1) s(-2), (-1,1) s(1).
  assertClose(metrics.perLabel.b.bce, (s(-1) + 2 * s(1) + s(-2)) / 4);
  // c: (0,0) log 2, (-2,0) s(-2), (-1,0) s(-1), (1,0) s(1).
  assertClose(metrics.perLabel.c.bce, (Math.LN2 + s(-2) + s(-1) + s(1)) / 4);
  // All 12: 3 s(-2) + 4 s(-1) + log 2 + 3 s(1) + s(2). With s(x) = x + s(-x) this is
  // 4 s(-2) + 7 s(-1) + log 2 + 5 = 4(0.1269280110) + 7(0.3132616875) + 0.6931471806 + 5 = 8.3936910374,
  // and 8.3936910374 / 12 = 0.6994742531.
  assertClose(metrics.bce, (4 * s(-2) + 7 * s(-1) + Math.LN2 + 5) / 12);
  assertClose(metrics.bce, 0.6994742531, 1e-10);
});

test('computeMetrics micro F1 equals summed-count formula', () => {
  const metrics = computeMetrics({ logits, targets, labels });
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (const label of labels) {
    tp += metrics.perLabel[label].tp;
    fp += metrics.perLabel[label].fp;
    fn += metrics.perLabel[label].fn;
  }
  assert.equal(metrics.microF1, (2 * tp) / (2 * tp + fp + fn));
  // The harmonic mean of micro precision and recall agrees up to rounding.
  const { microPrecision: p, microRecall: r } = metrics;
  assertClose(metrics.microF1, (2 * p * r) / (p + r), 1e-15);
});

test('computeMetrics counts match confusionCounts', () => {
  const metrics = computeMetrics({ logits, targets, labels, thresholds: [0.3, 0.6, 0.5] });
  const thresholds = [0.3, 0.6, 0.5];
  for (let l = 0; l < labels.length; l++) {
    const probabilities: number[] = [];
    const labelTargets: number[] = [];
    for (let i = 0; i < 4; i++) {
      probabilities.push(sigmoid(logits[i * 3 + l]));
      labelTargets.push(targets[i * 3 + l]);
    }
    const counts = confusionCounts(probabilities, labelTargets, thresholds[l]);
    const label = metrics.perLabel[labels[l]];
    assert.deepEqual({ tp: label.tp, fp: label.fp, fn: label.fn, tn: label.tn }, counts);
  }
});

test('computeMetrics with per-label thresholds', () => {
  // Thresholds a 0.8, b 0.5, c 0.75. σ(2) = 0.881, σ(1) = 0.731, σ(0) = 0.5.
  // a: only σ(2) >= 0.8, so predicted 1 0 0 0 against 1 1 0 1 -> TP1 FP0 FN2 TN1, F1 = 2/(2+0+2) = 0.5.
  // b: unchanged, TP1 FP1 FN1 TN1.
  // c: σ(0) and σ(1) are below 0.75, so nothing is predicted -> TP0 FP0 FN0 TN4, precision 0/0 -> 0.
  const metrics = computeMetrics({ logits, targets, labels, thresholds: [0.8, 0.5, 0.75] });
  assert.deepEqual(
    { tp: metrics.perLabel.a.tp, fp: metrics.perLabel.a.fp, fn: metrics.perLabel.a.fn, tn: metrics.perLabel.a.tn },
    { tp: 1, fp: 0, fn: 2, tn: 1 },
  );
  assert.equal(metrics.perLabel.a.f1, 0.5);
  assert.deepEqual(
    { tp: metrics.perLabel.c.tp, fp: metrics.perLabel.c.fp, fn: metrics.perLabel.c.fn, tn: metrics.perLabel.c.tn },
    { tp: 0, fp: 0, fn: 0, tn: 4 },
  );
  assert.equal(metrics.perLabel.c.precision, 0);
  // Images 0 (1 0 0) and 2 (0 1 0) are now exact: 2/4.
  assert.equal(metrics.exactMatch, 0.5);
  // Wrong entries: a FN 2 + b FP 1 + b FN 1 = 4 of 12.
  assertClose(metrics.hammingLoss, 4 / 12);
  // TP 2, FP 1, FN 3: micro F1 = 4/(4+1+3) = 0.5. macro F1 = (0.5 + 0.5 + 0) / 3 = 1/3.
  assertClose(metrics.microF1, 0.5);
  assertClose(metrics.macroF1, 1 / 3);
  // AP and BCE do not depend on thresholds.
  assertClose(metrics.mAP, 5 / 6);
  assertClose(metrics.bce, computeMetrics({ logits, targets, labels }).bce, 0);
});

test('computeMetrics single threshold applies to all', () => {
  // Threshold 0.7: predicted when logit >= 1 (σ(1) = 0.731), so a: 1 1 0 0, b: 0 1 1 0, c: 0 0 0 1.
  // a TP2 FN1, b TP1 FP1 FN1, c FP1 -> TP3 FP2 FN2: micro F1 = 6/(6+2+2) = 0.6.
  const metrics = computeMetrics({ logits, targets, labels, thresholds: 0.7 });
  assertClose(metrics.microF1, 0.6);
  assert.equal(metrics.perLabel.c.fp, 1);
});

test('computeMetrics all-negative predictions', () => {
  // Every logit is -5, so nothing is predicted. Targets (2 images by 2 labels): 1 0 / 1 0.
  const metrics = computeMetrics({
    logits: Float32Array.from([-5, -5, -5, -5]),
    targets: Float32Array.from([1, 0, 1, 0]),
    labels: ['x', 'y'],
  });
  // x: TP0 FP0 FN2 TN0: precision 0/0 -> 0, recall 0/2 = 0, F1 0.
  assert.equal(metrics.perLabel.x.precision, 0);
  assert.equal(metrics.perLabel.x.recall, 0);
  assert.equal(metrics.perLabel.x.f1, 0);
  assert.equal(metrics.perLabel.x.fn, 2);
  // y: TP0 FP0 FN0 TN2.
  assert.equal(metrics.perLabel.y.tn, 2);
  assert.equal(metrics.microPrecision, 0);
  assert.equal(metrics.microRecall, 0);
  assert.equal(metrics.microF1, 0);
  assert.equal(metrics.macroF1, 0);
  // Both images miss label x: exact match 0/2. Wrong entries 2 of 4.
  assert.equal(metrics.exactMatch, 0);
  assert.equal(metrics.hammingLoss, 0.5);
  // x: all scores tie, so AP = prevalence 2/2 = 1; y has no positives and is left out of mAP.
  assert.equal(metrics.perLabel.x.ap, 1);
  assert.equal(metrics.mAP, 1);
});

test('computeMetrics without any positives', () => {
  const metrics = computeMetrics({
    logits: Float32Array.from([-1, 2]),
    targets: Uint8Array.from([0, 0]),
    labels: ['x'],
  });
  // No label has a positive, so mAP averages nothing and is NaN.
  assert.ok(Number.isNaN(metrics.mAP));
  // Image 1 is predicted positive (σ(2) >= 0.5) without a positive target: exact match 1/2.
  assert.equal(metrics.exactMatch, 0.5);
});

test('computeMetrics large logits keep BCE exact', () => {
  // 2 images by 2 labels, every logit ±100:
  //   (100, 1)  -> e^-100            (-100, 0) -> e^-100
  //   (100, 0)  -> 100 + e^-100      (-100, 1) -> 100 + e^-100
  // Sum 200 + 4e^-100, and 4e^-100 = 1.5e-43 is far below the last bit of 200, so the mean is exactly 50.
  const metrics = computeMetrics({
    logits: Float32Array.from([100, -100, 100, -100]),
    targets: Uint8Array.from([1, 0, 0, 1]),
    labels: ['x', 'y'],
  });
  assert.equal(metrics.bce, 50);
  assert.ok(Number.isFinite(metrics.bce));
  // x: (100, 1) and (100, 0) -> (e^-100 + 100) / 2 = 50. y: (-100, 0) and (-100, 1) -> 50.
  assert.equal(metrics.perLabel.x.bce, 50);
  assert.equal(metrics.perLabel.y.bce, 50);
  // Correct, confident predictions give a BCE of e^-100, not 0 and not NaN.
  const confident = computeMetrics({
    logits: Float32Array.from([100, -100]),
    targets: Uint8Array.from([1, 0]),
    labels: ['x', 'y'],
  });
  assert.equal(confident.bce, Math.exp(-100));
});

test('computeMetrics ranks by logit past saturation', () => {
  // σ(40) and σ(50) both round to 1, but the logits still rank the positive first: AP = 1.
  // Ranking by the rounded probabilities would tie them and give AP = prevalence 1/2.
  const metrics = computeMetrics({
    logits: Float32Array.from([40, 50]),
    targets: Uint8Array.from([0, 1]),
    labels: ['x'],
  });
  assert.equal(sigmoid(40), sigmoid(50));
  assert.equal(metrics.perLabel.x.ap, 1);
});

test('computeMetrics label named __proto__', () => {
  const metrics = computeMetrics({
    logits: Float32Array.from([1, -1]),
    targets: Uint8Array.from([1, 0]),
    labels: ['__proto__', 'constructor'],
  });
  assert.deepEqual(Object.keys(metrics.perLabel), ['__proto__', 'constructor']);
  assert.equal(Object.getOwnPropertyDescriptor(metrics.perLabel, '__proto__')?.value.tp, 1);
  assert.equal(Object.getPrototypeOf(metrics.perLabel), Object.prototype);
});

test('computeMetrics rejects mismatched lengths', () => {
  assert.throws(
    () => computeMetrics({ logits: new Float32Array(6), targets: new Uint8Array(4), labels }),
    /logits has length 6 but targets has length 4/,
  );
  assert.throws(
    () => computeMetrics({ logits: new Float32Array(4), targets: new Uint8Array(4), labels }),
    /logits has length 4, which is not a multiple of the label count 3/,
  );
  assert.throws(
    () => computeMetrics({ logits: new Float32Array(0), targets: new Uint8Array(0), labels }),
    /logits and targets are empty/,
  );
  assert.throws(
    () => computeMetrics({ logits: new Float32Array(3), targets: new Uint8Array(3), labels: [] }),
    /labels is empty/,
  );
  assert.throws(
    () => computeMetrics({ logits: new Float32Array(2), targets: new Uint8Array(2), labels: ['x', 'x'] }),
    /label "x" appears twice/,
  );
});

test('computeMetrics rejects invalid thresholds', () => {
  assert.throws(
    () => computeMetrics({ logits, targets, labels, thresholds: [0.5, 0.5] }),
    /thresholds has length 2 but there are 3 labels \(a, b, c\)/,
  );
  assert.throws(
    () => computeMetrics({ logits, targets, labels, thresholds: [0.5, 1.5, 0.5] }),
    /thresholds\[1\] \(label "b"\) is 1\.5, but a threshold is a probability/,
  );
  assert.throws(
    () => computeMetrics({ logits, targets, labels, thresholds: [0.5, 0.5, -0.1] }),
    /thresholds\[2\] \(label "c"\) is -0\.1/,
  );
  assert.throws(() => computeMetrics({ logits, targets, labels, thresholds: NaN }), /threshold is NaN/);
  assert.throws(() => computeMetrics({ logits, targets, labels, thresholds: 2 }), /threshold is 2/);
});

test('computeMetrics rejects invalid values', () => {
  const badTargets = Float32Array.from(targets);
  badTargets[4] = 0.5;
  assert.throws(
    () => computeMetrics({ logits, targets: badTargets, labels }),
    /targets\[4\] \(image 1, label "b"\) is 0\.5, but targets must be 0 or 1/,
  );
  const badLogits = Float32Array.from(logits);
  badLogits[5] = NaN;
  assert.throws(
    () => computeMetrics({ logits: badLogits, targets, labels }),
    /logits\[5\] \(image 1, label "c"\) is NaN; every logit must be finite/,
  );
  badLogits[5] = Infinity;
  assert.throws(() => computeMetrics({ logits: badLogits, targets, labels }), /logits\[5\] .* is Infinity/);
});
