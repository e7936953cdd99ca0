// Input checks shared by the metric functions. Each error names the function, the value and the fix.

/**
 * Throws unless `scores` and `targets` have the same length, every target is 0 or 1 and no score is
 * NaN. Returns the number of positive targets.
 */
export function checkScoresAndTargets(
  functionName: string,
  scores: ArrayLike<number>,
  targets: ArrayLike<number>,
): number {
  if (scores.length !== targets.length) {
    throw new Error(
      `${functionName}: scores has length ${scores.length} but targets has length ${targets.length}; pass one target per score.`,
    );
  }
  let positives = 0;
  for (let i = 0; i < scores.length; i++) {
    if (Number.isNaN(scores[i])) {
      throw new Error(`${functionName}: scores[${i}] is NaN; every score must be a number.`);
    }
    const target = targets[i];
    if (target === 1) {
      positives++;
    } else if (target !== 0) {
      throw new Error(`${functionName}: targets[${i}] is ${target}, but targets must be 0 or 1.`);
    }
  }
  return positives;
}

/** Throws unless `threshold` is a probability in [0, 1]. `name` identifies the value in the message, e.g. `thresholds[2] (label "sea")`. */
export function checkThreshold(functionName: string, name: string, threshold: number): void {
  if (typeof threshold !== 'number' || !(threshold >= 0 && threshold <= 1)) {
    throw new Error(
      `${functionName}: ${name} is ${String(threshold)}, but a threshold is a probability: pass a number from 0 to 1.`,
    );
  }
}
