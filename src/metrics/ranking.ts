// Walks scores from highest to lowest, grouping equal scores, as ranking metrics need.

/** Fills `order` with the indices 0..order.length-1 sorted by descending score. Returns `order`. */
export function sortIndicesByScoreDescending(scores: ArrayLike<number>, order: Uint32Array): Uint32Array {
  for (let i = 0; i < order.length; i++) {
    order[i] = i;
  }
  // Comparisons instead of `scores[b] - scores[a]` keep the order valid for ±Infinity, where the
  // difference of two equal infinities is NaN.
  return order.sort((a, b) => {
    if (scores[a] > scores[b]) {
      return -1;
    }
    if (scores[a] < scores[b]) {
      return 1;
    }
    return 0;
  });
}

/**
 * Calls `visit` once per distinct score, from highest to lowest, with the cumulative true and false
 * positives of the rule "predict positive when score >= threshold". Equal scores form one group, so
 * the result does not depend on how the sort ordered ties. `order` must come from
 * sortIndicesByScoreDescending on the same scores. Targets must be 0 or 1.
 */
export function forEachScoreThreshold(
  scores: ArrayLike<number>,
  targets: ArrayLike<number>,
  order: Uint32Array,
  visit: (threshold: number, truePositives: number, falsePositives: number) => void,
): void {
  let truePositives = 0;
  let falsePositives = 0;
  let k = 0;
  while (k < order.length) {
    const threshold = scores[order[k]];
    while (k < order.length && scores[order[k]] === threshold) {
      if (targets[order[k]] === 1) {
        truePositives++;
      } else {
        falsePositives++;
      }
      k++;
    }
    visit(threshold, truePositives, falsePositives);
  }
}
