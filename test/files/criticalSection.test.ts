import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runCritical, whenNoCriticalWork } from '../../src/files/criticalSection.js';

/** Returns a promise and the function that resolves it. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open = (): void => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

test('idle wait resolves at once', async () => {
  await whenNoCriticalWork();
});

test('wait ends with the last section', async () => {
  const first = gate();
  const second = gate();
  const order: string[] = [];
  const outer = runCritical(async () => {
    await first.opened;
    order.push('first done');
  });
  const inner = runCritical(async () => {
    await second.opened;
    order.push('second done');
  });
  const waited = whenNoCriticalWork().then(() => order.push('wait over'));

  first.open();
  await outer;
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(order, ['first done'], 'the wait is not over while a section still runs');

  second.open();
  await inner;
  await waited;
  assert.deepEqual(order, ['first done', 'second done', 'wait over']);
});

test('failed section still ends the wait', async () => {
  const failing = runCritical(async () => {
    throw new Error('write failed');
  });
  await assert.rejects(failing, /write failed/);
  await whenNoCriticalWork();
});
