import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdamW, defaultAdamW } from '../../src/train/adamw.js';

// torch.optim.AdamW, per parameter and step t:
//   p <- p * (1 - lr * wd)
//   m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
//   p <- p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// Settings below: lr 0.1, wd 0.01, b1 0.9, b2 0.999, eps 1e-8.
const settings = { learningRate: 0.1, weightDecay: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 };

function assertClose(actual: number, expected: number, what: string): void {
  // The parameters are float32, whose spacing between 1 and 2 is 1.2e-7.
  assert.ok(Math.abs(actual - expected) <= 1e-6, `${what}: ${actual} vs ${expected}`);
}

test('AdamW first step matches torch', () => {
  const optimizer = new AdamW(settings);
  const parameter = Float32Array.from([1, -2, 0.5]);

  optimizer.update(new Map([['p', parameter]]), new Map([['p', Float32Array.from([0.5, -0.25, 0])]]));

  // Step 1: the bias corrections turn m and v into g and g^2, so the Adam part moves each parameter
  // by lr * g / (|g| + eps), about lr against the sign of g, and decay first scales it by 0.999.
  //   p0 = 1 * 0.999 - 0.1 * 0.5 / (0.5 + 1e-8)      = 0.899000002
  //   p1 = -2 * 0.999 + 0.1 * 0.25 / (0.25 + 1e-8)   = -1.898000004
  //   p2 = 0.5 * 0.999 - 0 (a zero gradient only decays) = 0.4995
  assertClose(parameter[0], 0.899000002, 'p0 after step 1');
  assertClose(parameter[1], -1.898000004, 'p1 after step 1');
  assertClose(parameter[2], 0.4995, 'p2 after step 1');
  assert.equal(optimizer.step, 1);
});

test('AdamW second step matches torch', () => {
  const optimizer = new AdamW(settings);
  const parameter = Float32Array.from([1, -2, 0.5]);
  const parameters = new Map([['p', parameter]]);

  optimizer.update(parameters, new Map([['p', Float32Array.from([0.5, -0.25, 0])]]));
  optimizer.update(parameters, new Map([['p', Float32Array.from([0.5, 0.25, 1])]]));

  // Step 2, bias corrections 1 - 0.9^2 = 0.19 and 1 - 0.999^2 = 0.001999.
  //   p0: m = 0.095, v = 0.00049975, so m^ = 0.5 and sqrt(v^) = 0.5:
  //       0.899000002 * 0.999 - 0.1 * 0.5 / (0.5 + 1e-8) = 0.798101004
  //   p1: m = 0.0025, v = 0.0001249375, so m^ = 0.0131578947 and sqrt(v^) = 0.25:
  //       -1.898000004 * 0.999 - 0.1 * 0.0131578947 / (0.25 + 1e-8) = -1.901365162
  //   p2: m = 0.1, v = 0.001, so m^ = 0.526315789 and sqrt(v^) = sqrt(0.50025) = 0.707283535:
  //       0.4995 * 0.999 - 0.1 * 0.526315789 / 0.707283535 = 0.424586819
  assertClose(parameter[0], 0.798101004, 'p0 after step 2');
  assertClose(parameter[1], -1.901365162, 'p1 after step 2');
  assertClose(parameter[2], 0.424586819, 'p2 after step 2');
  assert.equal(optimizer.step, 2);
});

test('AdamW keeps moments per parameter', () => {
  const optimizer = new AdamW(settings);
  const first = Float32Array.from([1]);
  const second = Float32Array.from([1]);

  optimizer.update(new Map([['first', first], ['second', second]]), new Map([['first', Float32Array.from([1])], ['second', Float32Array.from([-1])]]));

  assertClose(first[0], 0.999 - 0.1, 'parameter with gradient +1');
  assertClose(second[0], 0.999 + 0.1, 'parameter with gradient -1');
  assert.equal(optimizer.moments.size, 2);
});

test('AdamW reset starts a fresh optimizer', () => {
  const optimizer = new AdamW(settings);
  const parameter = Float32Array.from([1]);
  optimizer.update(new Map([['p', parameter]]), new Map([['p', Float32Array.from([0.3])]]));

  optimizer.reset({ ...settings, learningRate: 0.01 });
  const before = parameter[0];
  optimizer.update(new Map([['p', parameter]]), new Map([['p', Float32Array.from([-0.3])]]));

  // A fresh first step again moves by about the learning rate, here 0.01, after decay by 1 - 0.01 * 0.01.
  assertClose(parameter[0], before * 0.9999 + 0.01, 'parameter after the reset step');
  assert.equal(optimizer.step, 1);
});

test('AdamW rejects missing gradient', () => {
  const optimizer = new AdamW(settings);

  assert.throws(() => optimizer.update(new Map([['p', new Float32Array(2)]]), new Map()), /no gradient for parameter p\b/);
  assert.throws(() => optimizer.update(new Map([['p', new Float32Array(2)]]), new Map([['p', new Float32Array(3)]])), /3 values/);
});

test('AdamW defaults follow torch', () => {
  assert.deepEqual(defaultAdamW, { weightDecay: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 });
});
