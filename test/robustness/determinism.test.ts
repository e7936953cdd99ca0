// Reproducibility at the command line: the same seed, data and thread count repeat a run that includes
// a fine-tuning epoch, and another seed gives another run.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { recordColumns } from '../../src/train/record.js';
import { copyMimlSubset, runCli, trainArguments, type DataFolder } from './harness.js';

let workDir: string;
let data: DataFolder;
let first: RunOutput;

/** The files of a finished run that must repeat: metrics.json, log.csv without its seconds column, best.safetensors. */
interface RunOutput {
  metrics: unknown;
  log: string[][];
  best: Buffer;
}

before(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), 'multitag-determinism-'));
  // 30 training and 15 test images.
  data = await copyMimlSubset(path.join(workDir, 'data'), 32, 16);
  first = await trainWithSeed('seed-7-first', 7);
});

after(async () => {
  await rm(workDir, { recursive: true, force: true });
});

/** Trains one frozen and one fine-tuning epoch with `seed` and returns the files that must repeat. */
async function trainWithSeed(name: string, seed: number): Promise<RunOutput> {
  const outDir = path.join(workDir, name);
  const flags = ['--seed', String(seed), '--epochs', '1', '--batch-size', '8', '--micro-batch-size', '8', '--finetune-epochs', '1', '--unfreeze', 'last:2'];
  const outcome = await runCli(trainArguments(data.dir, outDir, flags));
  assert.equal(outcome.code, 0, `run ${name} failed:\n${outcome.stderr}`);

  const secondsColumn = recordColumns.indexOf('seconds');
  const lines = (await readFile(path.join(outDir, 'log.csv'), 'utf8')).trimEnd().split('\n');
  return {
    metrics: JSON.parse(await readFile(path.join(outDir, 'metrics.json'), 'utf8')),
    log: lines.map((line) => line.split(',').filter((_, column) => column !== secondsColumn)),
    best: await readFile(path.join(outDir, 'best.safetensors')),
  };
}

test('same seed repeats the run', async () => {
  const second = await trainWithSeed('seed-7-second', 7);

  assert.deepEqual(first.log.slice(1).map((row) => row[1]), ['adaptation', 'finetuning'], 'the run has a fine-tuning epoch');
  assert.deepEqual(second.log, first.log);
  assert.deepEqual(second.metrics, first.metrics);
  assert.ok(second.best.equals(first.best), 'best.safetensors is byte for byte the same');
});

test('another seed changes the run', async () => {
  const other = await trainWithSeed('seed-8', 8);

  assert.notDeepEqual(other.log.slice(1), first.log.slice(1), 'log.csv rows differ');
  assert.notDeepEqual(other.metrics, first.metrics, 'metrics.json differs');
  assert.ok(!other.best.equals(first.best), 'best.safetensors differs');
});
