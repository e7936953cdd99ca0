// Runs asynchronous work over a list with a bounded number of tasks in flight.

/**
 * Maps `items` through `work` with at most `concurrency` calls pending at once, keeping the order of
 * results. `onDone` is called after each item finishes with the number finished so far.
 */
export async function mapConcurrent<Item, Result>(
  items: readonly Item[],
  concurrency: number,
  work: (item: Item, index: number) => Promise<Result>,
  onDone?: (finished: number) => void,
): Promise<Result[]> {
  const results = new Array<Result>(items.length);
  let next = 0;
  let finished = 0;

  async function worker(): Promise<void> {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index], index);
      finished += 1;
      onDone?.(finished);
    }
  }

  const workers = Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, () => worker());
  await Promise.all(workers);
  return results;
}
