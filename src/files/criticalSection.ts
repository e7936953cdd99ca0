// Work that an interrupt should let finish, such as an atomic write or the bookkeeping at the end of an
// epoch. This module only counts the sections that are running. The program that handles signals
// decides what to do with the count, so the training code needs no knowledge of signals or terminals.

let running = 0;
let waiters: (() => void)[] = [];

/** Runs `work` as a critical section: {@link whenNoCriticalWork} resolves only after it has finished. */
export async function runCritical<T>(work: () => Promise<T>): Promise<T> {
  running += 1;
  try {
    return await work();
  } finally {
    running -= 1;
    if (running === 0) {
      const resolved = waiters;
      waiters = [];
      resolved.forEach((resolve) => resolve());
    }
  }
}

/** Resolves at once when no critical section is running, or else when the last one ends. */
export function whenNoCriticalWork(): Promise<void> {
  if (running === 0) {
    return Promise.resolve();
  }
  return new Promise((resolve) => waiters.push(resolve));
}
