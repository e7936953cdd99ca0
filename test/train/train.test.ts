import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readSafetensors } from '../../src/files/safetensors.js';
import { defaultTrainOptions } from '../../src/train/options.js';
import { recordColumns } from '../../src/train/record.js';
import { train, type TrainResult } from '../../src/train/train.js';
import { makeMimlSubset, readLabelMatrix, sharedBackbone } from './mimlSubset.js';
import { seededRandom } from '../support/seededRandom.js';

const epochs = 4;
let tempDir: string;
let dataDir: string;
let runDir: string;
let result: TrainResult;

before(async () => {
  tempDir = await mkdtemp(path.join(tmpdir(), 'multitag-train-test-'));
  dataDir = path.join(tempDir, 'data');
  runDir = path.join(tempDir, 'run');
  // Every 4th of the 960 training images and all 240 test images.
  await makeMimlSubset(dataDir, { trainEvery: 4, testEvery: 1 });

  result = await train({
    ...defaultTrainOptions,
    dataDir,
    backbone: { source: sharedBackbone, preprocessing: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] } },
    outDir: runDir,
    epochs,
    // 15 steps per epoch; the default batch of 64 gives too few steps in 4 epochs of 240 images.
    batchSize: 16,
    finetune: false,
    threads: 2,
  });
});

after(async () => {
  await rm(tempDir, { recursive: true, force: true });
});


/** Micro-averaged F1 over all entries of 0/1 matrices; 0 when nothing is predicted or present. */
function microF1(predicted: Uint8Array, targets: Uint8Array): number {
  let truePositives = 0;
  let falsePositives = 0;
  let falseNegatives = 0;
  for (let index = 0; index < targets.length; index++) {
    truePositives += predicted[index] & targets[index];
    falsePositives += predicted[index] & (1 - targets[index]);
    falseNegatives += (1 - predicted[index]) & targets[index];
  }
  const denominator = 2 * truePositives + falsePositives + falseNegatives;
  return denominator === 0 ? 0 : (2 * truePositives) / denominator;
}

test('trained model beats baselines', async () => {
  const trainSplit = await readLabelMatrix(path.join(dataDir, 'train_label.csv'));
  const testSplit = await readLabelMatrix(path.join(dataDir, 'test_label.csv'));
  const labelCount = trainSplit.labels.length;
  const trainCount = trainSplit.files.length;
  const testCount = testSplit.files.length;
  const frequency = trainSplit.labels.map((_, label) => {
    let positives = 0;
    for (let row = 0; row < trainCount; row++) {
      positives += trainSplit.targets[row * labelCount + label];
    }
    return positives / trainCount;
  });

  const allNegative = new Uint8Array(testCount * labelCount);
  const byFrequency = Uint8Array.from({ length: testCount * labelCount }, (_, index) => (frequency[index % labelCount] >= 0.5 ? 1 : 0));
  const random = seededRandom(2024);
  const byChance = Uint8Array.from({ length: testCount * labelCount }, (_, index) => (random() < frequency[index % labelCount] ? 1 : 0));
  const baselines = {
    'all negative': microF1(allNegative, testSplit.targets),
    'label frequency at 0.5': microF1(byFrequency, testSplit.targets),
    'random at label frequency': microF1(byChance, testSplit.targets),
  };

  assert.equal(trainCount, 240);
  assert.equal(testCount, 240);
  assert.deepEqual(result.labels, testSplit.labels);
  for (const [name, baseline] of Object.entries(baselines)) {
    assert.ok(result.testMetrics.microF1 >= baseline + 0.2, `test micro-F1 ${result.testMetrics.microF1.toFixed(3)} vs ${name} baseline ${baseline.toFixed(3)}`);
  }
});

test('run folder holds every file', async () => {
  const files = new Set(await readdir(runDir));

  for (const name of ['config.json', 'log.csv', 'best.safetensors', 'checkpoint.safetensors', 'model.onnx', 'model.json', 'metrics.json']) {
    assert.ok(files.has(name), `${name} is in the run folder`);
  }
  assert.ok(![...files].some((name) => name.endsWith('.tmp')), `no temporary file is left: ${[...files].join(', ')}`);
});

test('log has one row per epoch', async () => {
  const lines = (await readFile(path.join(runDir, 'log.csv'), 'utf8')).trimEnd().split('\n');

  assert.equal(lines[0], recordColumns.join(','));
  assert.equal(lines.length - 1, result.records.length);
  assert.deepEqual(lines.slice(1).map((line) => Number(line.split(',')[0])), result.records.map((record) => record.epoch));
  // Patience 2 stops no earlier than epoch 3.
  assert.ok(result.records.length >= 3, `${result.records.length} epochs`);
  assert.ok(result.records.length <= epochs, `${result.records.length} epochs`);
});

test('run metadata matches the result', async () => {
  const metrics = JSON.parse(await readFile(path.join(runDir, 'metrics.json'), 'utf8')) as { testAtHalf: { microF1: number } };
  const model = JSON.parse(await readFile(path.join(runDir, 'model.json'), 'utf8')) as { labels: string[]; thresholds: number[]; inputSize: number };
  const config = JSON.parse(await readFile(path.join(runDir, 'config.json'), 'utf8')) as { labels: string[] };
  const best = await readSafetensors(path.join(runDir, 'best.safetensors'));

  assert.equal(metrics.testAtHalf.microF1, result.testMetrics.microF1);
  assert.deepEqual(model.labels, result.labels);
  assert.deepEqual(model.thresholds, result.thresholds);
  assert.ok(model.thresholds.every((threshold) => threshold > 0 && threshold < 1), `thresholds ${model.thresholds.join(', ')}`);
  assert.equal(model.inputSize, 224);
  assert.deepEqual(config.labels, result.labels);
  assert.deepEqual(best.tensors.get('head.weight')?.shape, [result.labels.length, 1280]);
  assert.deepEqual(best.tensors.get('head.bias')?.shape, [result.labels.length]);
  assert.equal(result.best.testCost, Math.min(...result.records.map((record) => record.testCost)), 'the kept epoch has the lowest test cost');
});

test('same seed repeats the run', async () => {
  const smallData = path.join(tempDir, 'small');
  await makeMimlSubset(smallData, { trainEvery: 12, testEvery: 6 });
  const options = {
    ...defaultTrainOptions,
    dataDir: smallData,
    backbone: { source: sharedBackbone, preprocessing: { mean: [0.5, 0.5, 0.5] as [number, number, number], std: [0.5, 0.5, 0.5] as [number, number, number] } },
    epochs: 2,
    batchSize: 16,
    finetune: false,
    threads: 2,
  };

  const first = await train({ ...options, outDir: path.join(tempDir, 'repeat-1') });
  const second = await train({ ...options, outDir: path.join(tempDir, 'repeat-2') });

  const withoutTime = (records: TrainResult['records']) => records.map(({ seconds: _seconds, ...rest }) => rest);
  assert.deepEqual(withoutTime(second.records), withoutTime(first.records));
  const firstBest = await readFile(path.join(tempDir, 'repeat-1', 'best.safetensors'));
  const secondBest = await readFile(path.join(tempDir, 'repeat-2', 'best.safetensors'));
  assert.ok(firstBest.equals(secondBest), 'best.safetensors is byte for byte the same');
});
