import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Random } from '../../src/image/random.js';

function draws(random: Random, count: number): number[] {
  return Array.from({ length: count }, () => random.next());
}

function pearsonCorrelation(a: number[], b: number[]): number {
  const meanA = a.reduce((sum, value) => sum + value, 0) / a.length;
  const meanB = b.reduce((sum, value) => sum + value, 0) / b.length;
  let covariance = 0;
  let varianceA = 0;
  let varianceB = 0;
  for (let i = 0; i < a.length; i++) {
    covariance += (a[i] - meanA) * (b[i] - meanB);
    varianceA += (a[i] - meanA) ** 2;
    varianceB += (b[i] - meanB) ** 2;
  }
  return covariance / Math.sqrt(varianceA * varianceB);
}

describe('Random', () => {
  test('same seed gives same sequence', () => {
    assert.deepEqual(draws(new Random(42), 100), draws(new Random(42), 100));
  });

  test('different seeds give different sequences', () => {
    const sequences = [0, 1, -1, 2 ** 32, 2 ** 40 + 7, Number.MAX_SAFE_INTEGER].map((seed) =>
      draws(new Random(seed), 4).join(','),
    );
    assert.equal(new Set(sequences).size, sequences.length);
  });

  test('matches xoshiro128** reference outputs', () => {
    // Outputs of xoshiro128** by Blackman and Vigna from state (1, 2, 3, 4), computed by a C version with
    // unsigned 32-bit arithmetic. By hand, the first is rotl(2 * 5, 7) * 9 = 11520.
    const random = Random.fromState([1, 2, 3, 4]);
    const outputs = Array.from({ length: 8 }, () => random.nextUint32());
    assert.deepEqual(outputs, [11520, 0, 5927040, 70819200, 2031721883, 1637235492, 1287239034, 3734860849]);
  });

  test('rejects non-integer seeds', () => {
    assert.throws(() => new Random(1.5), RangeError);
    assert.throws(() => new Random(Number.NaN), RangeError);
    assert.throws(() => new Random(2 ** 60), RangeError);
  });

  test('getState and fromState resume exactly', () => {
    const original = new Random(7);
    draws(original, 13);
    original.integer(10);
    const saved = JSON.parse(JSON.stringify(original.getState())) as number[];
    const resumed = Random.fromState(saved);
    assert.deepEqual(draws(resumed, 50), draws(original, 50));
    assert.deepEqual(resumed.getState(), original.getState());
  });

  test('getState returns unsigned 32-bit integers', () => {
    const random = new Random(3);
    for (let i = 0; i < 100; i++) {
      random.nextUint32();
      for (const word of random.getState()) {
        assert.ok(Number.isInteger(word), `state word ${word}`);
        assert.ok(word >= 0, `state word ${word}`);
        assert.ok(word < 2 ** 32, `state word ${word}`);
      }
    }
  });

  test('fromState rejects invalid states', () => {
    assert.throws(() => Random.fromState([0, 0, 0, 0]), RangeError);
    assert.throws(() => Random.fromState([1, 2, 3]), RangeError);
    assert.throws(() => Random.fromState([1, 2, 3, -4]), RangeError);
    assert.throws(() => Random.fromState([1, 2, 3, 2 ** 32]), RangeError);
    assert.throws(() => Random.fromState([1, 2, 3, 0.5]), RangeError);
  });

  test('fork is deterministic', () => {
    const first = new Random(11);
    const second = new Random(11);
    assert.deepEqual(draws(first.fork(), 20), draws(second.fork(), 20));
    assert.deepEqual(draws(first, 20), draws(second, 20));
  });

  test('fork gives independent streams', () => {
    const parent = new Random(5);
    const childA = parent.fork();
    const childB = parent.fork();
    const parentDraws = draws(parent, 20000);
    const childADraws = draws(childA, 20000);
    const childBDraws = draws(childB, 20000);
    assert.notDeepEqual(childADraws.slice(0, 10), parentDraws.slice(0, 10));
    assert.notDeepEqual(childADraws.slice(0, 10), childBDraws.slice(0, 10));
    // For 20000 independent uniform pairs the correlation has standard deviation about 0.007.
    assert.ok(Math.abs(pearsonCorrelation(parentDraws, childADraws)) < 0.04);
    assert.ok(Math.abs(pearsonCorrelation(childADraws, childBDraws)) < 0.04);
    assert.ok(Math.abs(pearsonCorrelation(childADraws.slice(1), childADraws.slice(0, -1))) < 0.04);
  });

  test('child draws leave parent unchanged', () => {
    const used = new Random(9);
    const unused = new Random(9);
    const child = used.fork();
    unused.fork();
    draws(child, 100);
    assert.deepEqual(draws(used, 20), draws(unused, 20));
  });

  test('next stays in [0, 1)', () => {
    const random = new Random(1);
    for (let i = 0; i < 100000; i++) {
      const value = random.next();
      assert.ok(value >= 0, `value ${value}`);
      assert.ok(value < 1, `value ${value}`);
    }
  });

  test('uniform range and mean', () => {
    const random = new Random(2);
    const count = 100000;
    let sum = 0;
    let min = Infinity;
    let max = -Infinity;
    for (let i = 0; i < count; i++) {
      const value = random.uniform(-2, 3);
      sum += value;
      min = Math.min(min, value);
      max = Math.max(max, value);
    }
    assert.ok(min >= -2, `min ${min}`);
    assert.ok(max < 3, `max ${max}`);
    assert.ok(min < -1.99, `min ${min} should be near -2`);
    assert.ok(max > 2.99, `max ${max} should be near 3`);
    // The mean of 100000 draws has standard deviation 5 / sqrt(12 * 100000), about 0.0046.
    assert.ok(Math.abs(sum / count - 0.5) < 0.025, `mean ${sum / count}`);
  });

  test('uniform with equal bounds', () => {
    assert.equal(new Random(1).uniform(4, 4), 4);
    assert.throws(() => new Random(1).uniform(3, 2), RangeError);
  });

  test('integer is uniform over its range', () => {
    const random = new Random(4);
    const counts = new Array<number>(6).fill(0);
    for (let i = 0; i < 60000; i++) {
      counts[random.integer(6)]++;
    }
    // Each count has standard deviation about 91, so 500 is more than 5 standard deviations.
    for (const count of counts) {
      assert.ok(Math.abs(count - 10000) < 500, `counts ${counts.join(', ')}`);
    }
    assert.equal(random.integer(1), 0);
    assert.throws(() => random.integer(0), RangeError);
    assert.throws(() => random.integer(2.5), RangeError);
  });

  test('integer has no modulo bias', () => {
    // With n = 3 * 2^30, taking a 32-bit value modulo n would return values below 2^30 twice as often
    // as the rest: half the time instead of a third.
    const random = new Random(6);
    const n = 3 * 2 ** 30;
    let low = 0;
    const count = 30000;
    for (let i = 0; i < count; i++) {
      const value = random.integer(n);
      assert.ok(Number.isInteger(value), `value ${value}`);
      assert.ok(value >= 0, `value ${value}`);
      assert.ok(value < n, `value ${value}`);
      low += value < 2 ** 30 ? 1 : 0;
    }
    // The fraction has standard deviation about 0.0027.
    assert.ok(Math.abs(low / count - 1 / 3) < 0.02, `fraction below 2^30: ${low / count}`);
  });

  test('shuffle is a permutation', () => {
    const items = Array.from({ length: 100 }, (_, i) => i);
    const shuffled = new Random(8).shuffle(items);
    assert.equal(shuffled, items);
    assert.deepEqual([...shuffled].sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i));
    assert.notDeepEqual(shuffled, Array.from({ length: 100 }, (_, i) => i));
    assert.deepEqual(new Random(8).shuffle(Array.from({ length: 100 }, (_, i) => i)), shuffled);
  });

  test('shuffle places each item everywhere equally', () => {
    const random = new Random(10);
    const firstPositionCounts = [0, 0, 0, 0];
    for (let i = 0; i < 8000; i++) {
      const order = random.shuffle(['a', 'b', 'c', 'd']);
      firstPositionCounts[['a', 'b', 'c', 'd'].indexOf(order[0])]++;
    }
    // Each count has standard deviation about 39.
    for (const count of firstPositionCounts) {
      assert.ok(Math.abs(count - 2000) < 200, `counts ${firstPositionCounts.join(', ')}`);
    }
  });
});
