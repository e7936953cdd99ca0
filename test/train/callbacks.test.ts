import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  CsvLogger,
  directionOf,
  EarlyStopping,
  NonFiniteCostError,
  PeriodicCheckpoint,
  SaveBest,
  TerminateOnNonFinite,
  type ParameterSnapshot,
  type TrainingContext,
} from '../../src/train/callbacks.js';
import { recordColumns, type EpochRecord } from '../../src/train/record.js';

/** A training context that records stop requests and checkpoint calls. */
class RecordingContext implements TrainingContext {
  stopReasons: string[] = [];
  checkpoints = 0;
  parameters: ParameterSnapshot = new Map([['w', Float32Array.from([0])]]);

  requestStop(reason: string): void {
    this.stopReasons.push(reason);
  }

  snapshot(): ParameterSnapshot {
    return new Map([...this.parameters].map(([name, values]) => [name, values.slice()]));
  }

  async saveCheckpoint(): Promise<void> {
    this.checkpoints += 1;
  }

  log(): void {}
}

function record(epoch: number, testCost: number, extra: Partial<EpochRecord> = {}): EpochRecord {
  return {
    phase: 'adaptation',
    epoch,
    phaseEpoch: epoch,
    trainCost: 0.5,
    testCost,
    testMicroF1: 0.6,
    testMacroF1: 0.55,
    testMAP: 0.7,
    learningRate: 0.001,
    seconds: 1.25,
    ...extra,
  };
}

test('metric directions', () => {
  assert.equal(directionOf('testCost'), 'min');
  assert.equal(directionOf('trainCost'), 'min');
  assert.equal(directionOf('testMAP'), 'max');
  assert.equal(directionOf('testMicroF1'), 'max');
  assert.equal(directionOf('testMacroF1'), 'max');
});

test('early stopping waits exactly patience epochs', () => {
  const stopping = new EarlyStopping('testCost', 2);
  const context = new RecordingContext();
  const costs = [1.0, 0.8, 0.85, 0.9];

  const stopsAfter: number[] = [];
  costs.forEach((cost, index) => {
    stopping.onEpochEnd(record(index + 1, cost), context);
    stopsAfter.push(context.stopReasons.length);
  });

  // Epoch 2 is the best. Epochs 3 and 4 do not improve, so the stop request comes at epoch 4.
  assert.deepEqual(stopsAfter, [0, 0, 0, 1]);
  assert.equal(stopping.best, 0.8);
  assert.equal(stopping.bestEpoch, 2);
  assert.match(context.stopReasons[0], /testCost/);
});

test('early stopping on a maximised metric', () => {
  const stopping = new EarlyStopping('testMAP', 1);
  const context = new RecordingContext();

  stopping.onEpochEnd(record(1, 1, { testMAP: 0.5 }), context);
  stopping.onEpochEnd(record(2, 1, { testMAP: 0.6 }), context);

  assert.equal(context.stopReasons.length, 0, 'a higher mAP is an improvement');

  stopping.onEpochEnd(record(3, 1, { testMAP: 0.55 }), context);

  assert.equal(context.stopReasons.length, 1, 'a lower mAP is not');
  assert.equal(stopping.best, 0.6);
});

test('early stopping respects min delta', () => {
  const stopping = new EarlyStopping('testCost', 1, 0.1);
  const context = new RecordingContext();

  stopping.onEpochEnd(record(1, 1.0), context);
  stopping.onEpochEnd(record(2, 0.95), context);

  assert.equal(context.stopReasons.length, 1, 'an improvement smaller than minDelta does not count');
  assert.equal(stopping.best, 1.0);
});

test('reset patience keeps the best', () => {
  const stopping = new EarlyStopping('testCost', 2);
  const context = new RecordingContext();
  stopping.onEpochEnd(record(1, 0.5), context);
  stopping.onEpochEnd(record(2, 0.6), context);

  stopping.resetPatience(3);

  assert.equal(stopping.best, 0.5);
  assert.equal(stopping.bestEpoch, 1);
  assert.equal(stopping.epochsWithoutImprovement, 0);
  assert.equal(stopping.patience, 3);

  stopping.onEpochEnd(record(3, 0.55), context);
  stopping.onEpochEnd(record(4, 0.55), context);

  assert.equal(context.stopReasons.length, 0, 'only two epochs without improvement under the new patience');

  stopping.onEpochEnd(record(5, 0.52), context);

  assert.equal(context.stopReasons.length, 1, 'a cost above the kept best is still no improvement');
});

test('save best saves only improvements', async () => {
  const saved: Array<{ epoch: number; value: number }> = [];
  const saveBest = new SaveBest('testCost', async (parameters, epochRecord) => {
    saved.push({ epoch: epochRecord.epoch, value: parameters.get('w')![0] });
  });
  const context = new RecordingContext();
  const costs = [0.9, 0.7, 0.8, 0.6, 0.6];

  for (const [index, cost] of costs.entries()) {
    context.parameters.get('w')![0] = index + 1;
    await saveBest.onEpochEnd(record(index + 1, cost), context);
  }

  assert.deepEqual(saved.map((entry) => entry.epoch), [1, 2, 4]);
  assert.deepEqual(saved.map((entry) => entry.value), [1, 2, 4], 'each save gets the parameters of its epoch');
  assert.equal(saveBest.bestParameters?.get('w')?.[0], 4);
  assert.equal(saveBest.bestEpoch, 4);
});

test('saved best parameters are copies', async () => {
  const saveBest = new SaveBest('testCost', async () => {});
  const context = new RecordingContext();
  context.parameters.get('w')![0] = 3;

  await saveBest.onEpochEnd(record(1, 0.5), context);
  context.parameters.get('w')![0] = 9;

  assert.equal(saveBest.bestParameters?.get('w')?.[0], 3);
});

test('CSV logger writes header and rows', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'multitag-csv-test-'));
  try {
    const file = path.join(dir, 'log.csv');
    const logger = new CsvLogger(file);

    await logger.onEpochEnd(record(1, 0.75));
    await logger.onEpochEnd(record(2, 0.5));
    await logger.onEpochEnd(record(3, 0.25, { phase: 'finetuning', phaseEpoch: 1 }));

    const lines = (await readFile(file, 'utf8')).trimEnd().split('\n');
    assert.equal(lines.length, 4);
    assert.equal(lines[0], recordColumns.join(','));
    const rows = lines.slice(1).map((line) => Object.fromEntries(line.split(',').map((cell, index) => [recordColumns[index], cell])));
    assert.deepEqual(rows.map((row) => Number(row.epoch)), [1, 2, 3]);
    assert.deepEqual(rows.map((row) => Number(row.testCost)), [0.75, 0.5, 0.25]);
    assert.deepEqual(rows.map((row) => row.phase), ['adaptation', 'adaptation', 'finetuning']);
    assert.equal(Number(rows[0].learningRate), 0.001);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('periodic checkpoint interval', async () => {
  const checkpoint = new PeriodicCheckpoint(2);
  const context = new RecordingContext();

  for (let epoch = 1; epoch <= 5; epoch++) {
    await checkpoint.onEpochEnd(record(epoch, 1), context);
  }

  assert.equal(context.checkpoints, 2);
});

test('non-finite cost stops training', () => {
  const terminate = new TerminateOnNonFinite();

  assert.doesNotThrow(() => terminate.onEpochEnd(record(1, 0.5)));
  assert.throws(() => terminate.onEpochEnd(record(2, Number.NaN)), NonFiniteCostError);
  assert.throws(() => terminate.onEpochEnd(record(3, 0.5, { trainCost: Infinity })), /train cost of epoch 3/);
});
