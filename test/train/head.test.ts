import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHead, headGradients, headLogits, type LinearHead } from '../../src/train/head.js';
import { Random } from '../../src/image/random.js';
import { seededRandom } from '../support/seededRandom.js';


interface Problem {
  head: LinearHead;
  features: Float32Array;
  targets: Uint8Array;
  count: number;
}

function randomProblem(seed: number, count: number, featureSize: number, labelCount: number): Problem {
  const random = seededRandom(seed);
  const uniform = (low: number, high: number): number => low + (high - low) * random();
  const head: LinearHead = {
    featureSize,
    labelCount,
    weight: Float32Array.from({ length: labelCount * featureSize }, () => uniform(-1, 1)),
    bias: Float32Array.from({ length: labelCount }, () => uniform(-0.5, 0.5)),
  };
  const features = Float32Array.from({ length: count * featureSize }, () => uniform(0, 2));
  const targets = Uint8Array.from({ length: count * labelCount }, () => (random() < 0.4 ? 1 : 0));
  return { head, features, targets, count };
}

/**
 * Mean binary cross-entropy in float64, written directly as -[t log p + (1 - t) log(1 - p)] with
 * p = sigmoid(w . x + b). `weight` and `bias` are float64 copies, so finite differences are not
 * limited by float32 rounding.
 */
function directLoss(problem: Problem, weight: Float64Array, bias: Float64Array): number {
  const { featureSize, labelCount } = problem.head;
  let sum = 0;
  for (let row = 0; row < problem.count; row++) {
    for (let label = 0; label < labelCount; label++) {
      let logit = bias[label];
      for (let feature = 0; feature < featureSize; feature++) {
        logit += weight[label * featureSize + feature] * problem.features[row * featureSize + feature];
      }
      const probability = 1 / (1 + Math.exp(-logit));
      const target = problem.targets[row * labelCount + label];
      sum -= target * Math.log(probability) + (1 - target) * Math.log(1 - probability);
    }
  }
  return sum / (problem.count * labelCount);
}

function centralDifference(evaluate: (values: Float64Array) => number, values: Float64Array, index: number, step: number): number {
  const saved = values[index];
  values[index] = saved + step;
  const above = evaluate(values);
  values[index] = saved - step;
  const below = evaluate(values);
  values[index] = saved;
  return (above - below) / (2 * step);
}

function assertClose(actual: number, expected: number, tolerance: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} vs ${expected} (tolerance ${tolerance})`);
}

test('head loss equals direct BCE', () => {
  const problem = randomProblem(1, 6, 4, 3);

  const { loss } = headGradients(problem.head, problem.features, problem.targets, problem.count);

  const expected = directLoss(problem, Float64Array.from(problem.head.weight), Float64Array.from(problem.head.bias));
  assertClose(loss, expected, 1e-6, 'loss');
});

test('head weight gradient matches finite differences', () => {
  const problem = randomProblem(2, 5, 4, 3);
  const weight = Float64Array.from(problem.head.weight);
  const bias = Float64Array.from(problem.head.bias);

  const gradients = headGradients(problem.head, problem.features, problem.targets, problem.count);

  for (let index = 0; index < weight.length; index++) {
    const numeric = centralDifference((values) => directLoss(problem, values, bias), weight, index, 1e-5);
    assertClose(gradients.weight[index], numeric, 1e-6 + 1e-4 * Math.abs(numeric), `weight[${index}]`);
  }
});

test('head bias gradient matches finite differences', () => {
  const problem = randomProblem(3, 5, 4, 3);
  const weight = Float64Array.from(problem.head.weight);
  const bias = Float64Array.from(problem.head.bias);

  const gradients = headGradients(problem.head, problem.features, problem.targets, problem.count);

  for (let index = 0; index < bias.length; index++) {
    const numeric = centralDifference((values) => directLoss(problem, weight, values), bias, index, 1e-5);
    assertClose(gradients.bias[index], numeric, 1e-6 + 1e-4 * Math.abs(numeric), `bias[${index}]`);
  }
});

test('head loss is stable for large logits', () => {
  // One feature of 1 and a bias of +-60 give logits of +-60, where 1 - sigmoid(60) rounds to 0 in float64.
  const head: LinearHead = { featureSize: 1, labelCount: 2, weight: Float32Array.from([0, 0]), bias: Float32Array.from([60, -60]) };
  const features = Float32Array.from([1]);
  const targets = Uint8Array.from([0, 1]);

  const { loss, bias } = headGradients(head, features, targets, 1);

  // Both entries are wrong by a logit of 60, so each loss is 60 + log(1 + exp(-60)).
  assertClose(loss, 60 + Math.log1p(Math.exp(-60)), 1e-9, 'loss');
  assertClose(bias[0], 0.5, 1e-9, 'bias gradient of the false positive');
  assertClose(bias[1], -0.5, 1e-9, 'bias gradient of the false negative');
});

test('head logits are features times weight plus bias', () => {
  const problem = randomProblem(4, 3, 5, 2);

  const logits = headLogits(problem.head, problem.features, problem.count);

  for (let row = 0; row < problem.count; row++) {
    for (let label = 0; label < 2; label++) {
      let expected = problem.head.bias[label];
      for (let feature = 0; feature < 5; feature++) {
        expected += problem.head.weight[label * 5 + feature] * problem.features[row * 5 + feature];
      }
      assertClose(logits[row * 2 + label], expected, 1e-5, `logit [${row}, ${label}]`);
    }
  }
});

test('head initialisation follows nn.Linear bounds', () => {
  const head = createHead(100, 4, new Random(5));
  const bound = 1 / Math.sqrt(100);

  assert.equal(head.weight.length, 400);
  assert.equal(head.bias.length, 4);
  assert.ok(head.weight.every((value) => Math.abs(value) <= bound), 'weights lie within 1/sqrt(featureSize)');
  assert.ok(head.bias.every((value) => Math.abs(value) <= bound), 'biases lie within 1/sqrt(featureSize)');
  assert.ok(Math.max(...head.weight) > bound * 0.9, 'weights use the upper part of the range');
  assert.ok(Math.min(...head.weight) < -bound * 0.9, 'weights use the lower part of the range');
});
