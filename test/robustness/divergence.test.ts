// Numerical faults as a user meets them: an absurd learning rate makes the costs NaN or infinite. The
// run must stop with a message that names the epoch and the option to lower, and keep the model and
// checkpoint of the last good epoch usable.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readSafetensors } from '../../src/files/safetensors.js';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { csvToRecords } from '../../src/train/record.js';
import { assertUserError, copyMimlSubset, runCli, trainArguments, type CliOutcome, type DataFolder } from './harness.js';

let workDir: string;
let data: DataFolder;

before(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), 'multitag-divergence-'));
  // 30 training and 15 test images.
  data = await copyMimlSubset(path.join(workDir, 'data'), 32, 16);
});

after(async () => {
  await rm(workDir, { recursive: true, force: true });
});

function allFinite(values: Float32Array): boolean {
  return values.every(Number.isFinite);
}

test('diverging first epoch is reported', async () => {
  const outDir = path.join(workDir, 'first-epoch');
  // One batch per epoch: the train cost is measured before the only step and stays finite, while the
  // step with learning rate 1e38 turns the head's weights, and so the test logits, into overflowing values.
  const outcome = await runCli(trainArguments(data.dir, outDir, ['--lr', '1e38', '--batch-size', '64']));

  assertUserError(outcome, [
    'Training diverged: the test cost of epoch 1 (adaptation) is not a finite number.',
    'No model was saved, because it was the first epoch.',
    'Lower the learning rate (--lr, now 1e+38)',
  ]);
  assert.deepEqual(await readdir(outDir), ['config.json'], 'nothing but config.json is written');
});

describe('diverging fine-tuning', () => {
  const outDir = (): string => path.join(workDir, 'finetuning');
  let outcome: CliOutcome;

  before(async () => {
    // One good frozen epoch, then fine-tuning with learning rate 1e38 over 4 batches of 8 images: the
    // first step makes the backbone's last layers overflow, so the epoch's mean train cost is not finite.
    const flags = ['--epochs', '1', '--batch-size', '8', '--micro-batch-size', '8', '--finetune-epochs', '2', '--unfreeze', 'last:2', '--finetune-lr', '1e38'];
    outcome = await runCli(trainArguments(data.dir, outDir(), flags));
  });

  test('divergence names epoch and option', () => {
    assertUserError(outcome, [
      'Training diverged: the train cost of epoch 2 (finetuning) is not a finite number.',
      'The run folder keeps the best model of epoch 1',
      'Lower the learning rate (--finetune-lr, now 1e+38)',
    ]);
  });

  test('log keeps only the good epoch', async () => {
    const records = csvToRecords(await readFile(path.join(outDir(), 'log.csv'), 'utf8'));

    assert.deepEqual(records.map((record) => record.epoch), [1]);
    assert.ok(Number.isFinite(records[0].trainCost), `train cost ${records[0].trainCost}`);
    assert.ok(Number.isFinite(records[0].testCost), `test cost ${records[0].testCost}`);
  });

  test('checkpoint of good epoch loads', async () => {
    const checkpoint = await readCheckpoint(path.join(outDir(), 'checkpoint.safetensors'));

    assert.equal(checkpoint.state.epoch, 1);
    assert.equal(checkpoint.state.phase, 'adaptation');
    assert.ok(checkpoint.parameters.size > 0, 'the checkpoint holds parameters');
    for (const [name, values] of checkpoint.parameters) {
      assert.ok(allFinite(values), `checkpoint tensor ${name} is finite`);
    }
  });

  test('best model still predicts', async () => {
    const best = await readSafetensors(path.join(outDir(), 'best.safetensors'));
    for (const [name, tensor] of best.tensors) {
      assert.ok(allFinite(tensor.data), `best tensor ${name} is finite`);
    }

    const image = path.join(data.dir, 'test', data.test[0].file);
    const prediction = await runCli(['predict', '--model', outDir(), '--threads', '1', image]);

    assert.equal(prediction.code, 0, prediction.stderr);
    const [record] = JSON.parse(prediction.stdout) as { file: string; probabilities: Record<string, number> }[];
    assert.equal(record.file, image);
    for (const [label, probability] of Object.entries(record.probabilities)) {
      assert.ok(probability >= 0, `${label}: probability ${probability}`);
      assert.ok(probability <= 1, `${label}: probability ${probability}`);
    }
  });

  test('no temporary file is left', async () => {
    const files = await readdir(outDir());

    assert.deepEqual(files.filter((file) => file.endsWith('.tmp')), []);
  });
});
