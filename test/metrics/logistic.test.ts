import assert from 'node:assert/strict';
import { test } from 'node:test';

import { bceWithLogits, sigmoid } from '../../src/metrics/index.js';

function assertClose(actual: number, expected: number, tolerance = 1e-12): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `expected ${expected}, got ${actual}`);
}

test('sigmoid at small logits', () => {
  // σ(0) = 1 / (1 + e^0) = 1/2.
  assert.equal(sigmoid(0), 0.5);
  // σ(2) = 1 / (1 + e^-2) = 1 / 1.1353352832 = 0.8807970780.
  assertClose(sigmoid(2), 0.880797077977882);
  // σ(-2) = e^-2 / (1 + e^-2) = 0.1353352832 / 1.1353352832 = 0.1192029220.
  assertClose(sigmoid(-2), 0.11920292202211755);
  // σ(x) + σ(-x) = 1.
  assertClose(sigmoid(3.5) + sigmoid(-3.5), 1);
});

test('sigmoid at large logits', () => {
  // e^-1000 underflows to 0, so σ(1000) = 1 / (1 + 0) = 1 and σ(-1000) = 0 / (1 + 0) = 0.
  assert.equal(sigmoid(1000), 1);
  assert.equal(sigmoid(-1000), 0);
  // σ(-100) = e^-100 / (1 + e^-100), and 1 + e^-100 rounds to 1, so the result is e^-100 = 3.72e-44.
  assert.equal(sigmoid(-100), Math.exp(-100));
  assert.ok(sigmoid(-100) > 0);
});

test('bceWithLogits at small logits', () => {
  // t = 1, x = 0: -log σ(0) = log 2.
  assertClose(bceWithLogits(0, 1), Math.LN2);
  // t = 0, x = 0: -log(1 - σ(0)) = log 2.
  assertClose(bceWithLogits(0, 0), Math.LN2);
  // t = 1, x = 2: -log σ(2) = log(1 + e^-2) = log 1.1353352832 = 0.1269280110.
  assertClose(bceWithLogits(2, 1), 0.12692801104297263);
  // t = 0, x = 2: -log(1 - σ(2)) = log(1 + e^2) = 2 + log(1 + e^-2) = 2.1269280110.
  assertClose(bceWithLogits(2, 0), 2.1269280110429727);
  // t = 0.25, x = 1: 1 - 0.25 + log(1 + e^-1) = 0.75 + 0.3132616875 = 1.0632616875.
  assertClose(bceWithLogits(1, 0.25), 1.0632616875182228);
});

test('bceWithLogits agrees with the log form', () => {
  for (const logit of [-6, -1.5, -0.1, 0.3, 2.2, 7]) {
    for (const target of [0, 0.3, 1]) {
      const p = sigmoid(logit);
      const direct = -(target * Math.log(p) + (1 - target) * Math.log(1 - p));
      assertClose(bceWithLogits(logit, target), direct, 1e-9);
    }
  }
});

test('bceWithLogits at |x| = 100 stays exact', () => {
  // x = 100, t = 1: 100 - 100 + log1p(e^-100). log1p(y) = y - y²/2 + ..., and y² is far below
  // the last bit of y = 3.72e-44, so the result is exactly e^-100.
  assert.equal(bceWithLogits(100, 1), Math.exp(-100));
  // x = -100, t = 0: 0 + 0 + log1p(e^-100) = e^-100, same reasoning.
  assert.equal(bceWithLogits(-100, 0), Math.exp(-100));
  // x = 100, t = 0: 100 - 0 + e^-100, and 100 + 3.72e-44 rounds to 100.
  assert.equal(bceWithLogits(100, 0), 100);
  // x = -100, t = 1: 0 + 100 + e^-100 = 100.
  assert.equal(bceWithLogits(-100, 1), 100);
  // The log form breaks here: 1 - σ(100) rounds to 0 and -log(0) is Infinity.
  assert.equal(-Math.log(1 - sigmoid(100)), Infinity);
});
