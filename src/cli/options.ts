// Parsers for option values that turn a bad value into a message naming the option and the fix.
import { InvalidArgumentError } from 'commander';

/** Returns a commander parser for an integer in [min, max]. */
export function integerOption(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < min || parsed > max) {
      throw new InvalidArgumentError(`Expected a whole number from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ' up'}, got "${value}".`);
    }
    return parsed;
  };
}

/** Returns a commander parser for a number in [min, max]. */
export function numberOption(min: number, max = Infinity): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (value.trim() === '' || !Number.isFinite(parsed) || parsed < min || parsed > max) {
      throw new InvalidArgumentError(`Expected a number from ${min}${Number.isFinite(max) ? ` to ${max}` : ' up'}, got "${value}".`);
    }
    return parsed;
  };
}

/** Returns a commander parser for a positive number. */
export function positiveNumberOption(): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (value.trim() === '' || !Number.isFinite(parsed) || parsed <= 0) {
      throw new InvalidArgumentError(`Expected a positive number, got "${value}".`);
    }
    return parsed;
  };
}
