// Seeded pseudo-random numbers, meant as the one source of randomness in multitag (shuffling,
// augmentation, weight initialisation) so that a run with the same seed repeats exactly.

const TWO_POW_32 = 0x1_0000_0000;
const TWO_POW_53 = 2 ** 53;
const GOLDEN_GAMMA = 0x9e3779b9;

/** Mixes a 32-bit value with the splitmix32 output function (a bijection on 32-bit integers). */
function mix32(value: number): number {
  let t = value | 0;
  t ^= t >>> 16;
  t = Math.imul(t, 0x21f0aaad);
  t ^= t >>> 15;
  t = Math.imul(t, 0x735a2d97);
  t ^= t >>> 15;
  return t >>> 0;
}

function rotateLeft(value: number, bits: number): number {
  return (value << bits) | (value >>> (32 - bits));
}

function isUint32(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value < TWO_POW_32;
}

/**
 * A seeded generator based on xoshiro128** by Blackman and Vigna, with 128 bits of state and period
 * 2^128 - 1. The seed is expanded into the state with splitmix32.
 * Not suitable for cryptography.
 */
export class Random {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;

  /** Seeds the generator from any safe integer, negative values included. Different seeds give different states. */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) {
      throw new RangeError(`Random seed must be a safe integer, got ${String(seed)}. Pass an integer such as 42.`);
    }
    const low = seed >>> 0;
    const high = Math.floor(seed / TWO_POW_32) >>> 0;
    // Two splitmix32 streams, one started from each half of the seed. mix32 is a bijection, so s0 and s2
    // alone already tell any two seeds apart, and s0 and s1 never both come out zero.
    this.setState(
      mix32(low + GOLDEN_GAMMA),
      mix32(low + 2 * GOLDEN_GAMMA),
      mix32((high ^ 0x5bd1e995) + GOLDEN_GAMMA),
      mix32((high ^ 0x5bd1e995) + 2 * GOLDEN_GAMMA),
    );
  }

  /** Restores a generator from the output of getState(). */
  static fromState(state: number[]): Random {
    const random = new Random(0);
    random.restoreState(state);
    return random;
  }

  /** Moves this generator to a state returned by getState(), so holders of this object continue from there. */
  restoreState(state: number[]): void {
    const valid =
      Array.isArray(state) && state.length === 4 && state.every(isUint32) && state.some((word) => word !== 0);
    if (!valid) {
      throw new RangeError(
        `Random state must be an array of 4 unsigned 32-bit integers, not all zero, got ${JSON.stringify(state)}. ` +
          'Pass a value returned by Random.getState().',
      );
    }
    this.setState(state[0], state[1], state[2], state[3]);
  }

  /** Returns the full generator state as 4 unsigned 32-bit integers, for JSON checkpoints. */
  getState(): number[] {
    return [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0];
  }

  /** Returns the next 32-bit output as an unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotateLeft(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotateLeft(this.s3, 11);
    return result;
  }

  /** Returns a uniform double in [0, 1) with 53 random bits, built from two 32-bit outputs. */
  next(): number {
    const high = this.nextUint32() >>> 5;
    const low = this.nextUint32() >>> 6;
    return (high * 0x400_0000 + low) / TWO_POW_53;
  }

  /**
   * Returns a uniform double in [low, high). When low equals high it returns low.
   * Throws a RangeError when low > high or either bound is not finite.
   */
  uniform(low: number, high: number): number {
    if (!Number.isFinite(low) || !Number.isFinite(high) || low > high) {
      throw new RangeError(`uniform(low, high) needs finite bounds with low <= high, got low ${low} and high ${high}.`);
    }
    for (;;) {
      const value = low + (high - low) * this.next();
      // Rounding can land exactly on high for some bounds. Drawing again keeps the result uniform.
      if (value < high || low === high) {
        return value;
      }
    }
  }

  /** Returns a uniform integer in [0, maxExclusive), without modulo bias. maxExclusive must be in 1..2^32. */
  integer(maxExclusive: number): number {
    if (!Number.isInteger(maxExclusive) || maxExclusive < 1 || maxExclusive > TWO_POW_32) {
      throw new RangeError(`integer(maxExclusive) needs an integer from 1 to 2^32, got ${maxExclusive}.`);
    }
    // Reject the top partial block of 32-bit values so every residue is equally likely.
    const limit = TWO_POW_32 - (TWO_POW_32 % maxExclusive);
    for (;;) {
      const value = this.nextUint32();
      if (value < limit) {
        return value % maxExclusive;
      }
    }
  }

  /** Shuffles items in place with the Fisher-Yates algorithm and returns the same array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.integer(i + 1);
      const swap = items[i];
      items[i] = items[j];
      items[j] = swap;
    }
    return items;
  }

  /**
   * Returns a child generator seeded from the next four outputs of this one, each mixed with mix32, so the
   * child is deterministic given this generator's state. With a 128-bit state, the child's stream overlaps
   * another stream only with negligible probability, but this is not guaranteed. xoshiro's jump functions
   * would guarantee it for one level of forks, but not for forks of forks.
   */
  fork(): Random {
    const words = [0, 1, 2, 3].map((index) => mix32(this.nextUint32() + (index + 1) * GOLDEN_GAMMA));
    if (!words.some((word) => word !== 0)) {
      words[0] = GOLDEN_GAMMA;
    }
    const child = new Random(0);
    child.setState(words[0], words[1], words[2], words[3]);
    return child;
  }

  private setState(s0: number, s1: number, s2: number, s3: number): void {
    this.s0 = s0 >>> 0;
    this.s1 = s1 >>> 0;
    this.s2 = s2 >>> 0;
    this.s3 = s3 >>> 0;
  }
}
