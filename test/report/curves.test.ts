import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { curvesFile, defaultCurvePanelSize, drawTrainingCurves, TrainingCurves } from '../../src/report/curves.js';
import { parseTrainingLog } from '../../src/report/runConfig.js';
import type { TrainingContext } from '../../src/train/callbacks.js';
import { recordsToCsv, type EpochRecord, type PhaseName } from '../../src/train/record.js';
import { decodePng as decode } from './pictures.js';

function record(epoch: number, phase: PhaseName = 'adaptation', phaseEpoch = epoch): EpochRecord {
  return {
    phase,
    epoch,
    phaseEpoch,
    trainCost: 0.6 / epoch + 0.1,
    testCost: 0.5 / epoch + 0.15,
    testMicroF1: 0.5 + 0.03 * epoch,
    testMacroF1: 0.45 + 0.03 * epoch,
    testMAP: 0.6 + 0.02 * epoch,
    learningRate: 1e-3,
    seconds: 2.5,
  };
}

function context(): TrainingContext {
  return {
    requestStop: () => {},
    snapshot: () => new Map(),
    saveCheckpoint: async () => {},
    log: () => {},
  };
}

/** Counts pixels of the phase boundary's blue-grey (#6e7781 line, #57606a text), antialiased included. */
function boundaryPixels(image: { data: Buffer }): number {
  let count = 0;
  for (let index = 0; index < image.data.length; index += 3) {
    const [r, g, b] = [image.data[index], image.data[index + 1], image.data[index + 2]];
    if (r >= 80 && r <= 200 && b - r >= 12 && b - r <= 25 && g >= r && g <= b) {
      count += 1;
    }
  }
  return count;
}

test('curves callback writes PNG each epoch', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'multitag-curves-test-'));
  try {
    const callback = new TrainingCurves(dir);
    const pictures: Buffer[] = [];
    for (let epoch = 1; epoch <= 3; epoch++) {
      await callback.onEpochEnd(record(epoch), context());
      const png = await readFile(path.join(dir, curvesFile));
      const metadata = await sharp(png).metadata();
      assert.equal(metadata.format, 'png');
      assert.equal(metadata.width, defaultCurvePanelSize.width);
      assert.equal(metadata.height, defaultCurvePanelSize.height * 2);
      pictures.push(png);
    }

    // The file after epoch 3 is the drawing of all three epochs, not of fewer.
    const written = await decode(pictures[2]);
    const allEpochs = await decode(await drawTrainingCurves([record(1), record(2), record(3)]));
    const twoEpochs = await decode(await drawTrainingCurves([record(1), record(2)]));
    assert.ok(written.data.equals(allEpochs.data), 'curves.png after epoch 3 differs from the drawing of epochs 1-3');
    assert.ok(!written.data.equals(twoEpochs.data), 'curves.png after epoch 3 equals the drawing of epochs 1-2');
    assert.ok(!pictures[1].equals(pictures[2]));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('curves callback reads earlier epochs on resume', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'multitag-curves-test-'));
  try {
    await writeFile(path.join(dir, 'log.csv'), recordsToCsv([record(1), record(2), record(3)]));
    const callback = new TrainingCurves(dir);
    await callback.onEpochEnd(record(3), context());
    assert.deepEqual(callback.records.map((item) => item.epoch), [1, 2, 3]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('curves mark the phase boundary', async () => {
  const adaptationOnly = await decode(await drawTrainingCurves([1, 2, 3, 4, 5, 6].map((epoch) => record(epoch))));
  const withFinetuning = await decode(
    await drawTrainingCurves([record(1), record(2), record(3), record(4, 'finetuning', 1), record(5, 'finetuning', 2), record(6, 'finetuning', 3)]),
  );
  assert.equal(boundaryPixels(adaptationOnly), 0);
  // Two panels, each with a dashed line across the chart area and a caption.
  assert.ok(boundaryPixels(withFinetuning) > 200, `only ${boundaryPixels(withFinetuning)} boundary pixels`);
});

test('training log parses CsvLogger output', () => {
  const records = [record(1), record(2, 'finetuning', 1)];
  records[1].testMAP = NaN;
  const parsed = parseTrainingLog(recordsToCsv(records), 'log.csv');
  assert.equal(parsed.length, 2);
  assert.equal(parsed[1].phase, 'finetuning');
  assert.equal(parsed[1].phaseEpoch, 1);
  assert.ok(Number.isNaN(parsed[1].testMAP));
  assert.ok(Math.abs(parsed[0].trainCost - records[0].trainCost) < 1e-5);
});

test('training log rejects a broken cell', () => {
  const text = recordsToCsv([record(1)]).replace(/\n1,adaptation,1,[^,]+,/, '\n1,adaptation,1,oops,');
  assert.throws(() => parseTrainingLog(text, 'log.csv'), /log\.csv:2: trainCost is "oops"/);
});

test('curves write failure is a warning', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'multitag-curves-test-'));
  try {
    // A folder where curves.png belongs makes every write fail.
    await mkdir(path.join(dir, curvesFile));
    const logged: { level: string; message: string }[] = [];
    const logging: TrainingContext = { ...context(), log: (level, message) => logged.push({ level, message }) };
    const callback = new TrainingCurves(dir);

    await callback.onEpochEnd(record(1), logging);
    await callback.onEpochEnd(record(2), logging);

    const failures = logged.filter((entry) => entry.message.startsWith('could not write'));
    assert.deepEqual(failures.map((entry) => entry.level), ['warn', 'debug']);
    assert.match(failures[0].message, new RegExp(`could not write ${path.join(dir, curvesFile)} after epoch 1: .*Training goes on`));
    assert.equal(callback.records.length, 2, 'the records keep growing for the next drawing');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
