// The logistic function and binary cross-entropy on logits, written to stay finite for large |x|.

/** Computes 1 / (1 + e^-x). Only e^-|x| is evaluated, so no step overflows and the result is never NaN for finite x. */
export function sigmoid(x: number): number {
  if (x >= 0) {
    return 1 / (1 + Math.exp(-x));
  }
  const e = Math.exp(x);
  return e / (1 + e);
}

/**
 * Computes the binary cross-entropy -[t log σ(x) + (1 - t) log(1 - σ(x))] of one logit x against a
 * target t in [0, 1], in natural-log units.
 *
 * The form max(x, 0) - x t + log1p(e^-|x|) never takes the log of a rounded probability, so it stays
 * finite and accurate for every finite x: for x = 100 and t = 0 it returns 100, where -log(1 - σ(x))
 * returns Infinity. The target is not checked, so callers validate it.
 */
export function bceWithLogits(logit: number, target: number): number {
  return Math.max(logit, 0) - logit * target + Math.log1p(Math.exp(-Math.abs(logit)));
}
