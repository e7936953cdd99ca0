// Kills training with SIGKILL at random moments and checks that the run folder still loads and that
// `train --resume` ends with the same metrics as an uninterrupted run with the same seed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { readSafetensors } from '../../src/files/safetensors.js';
import { Random } from '../../src/image/random.js';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { csvToRecords } from '../../src/train/record.js';
import { makeMimlSubset, repoRoot, sharedBackbone } from './mimlSubset.js';

const cli = path.join(repoRoot, 'dist/src/cli/main.js');
const trials = 20;

let workDir: string;
let dataDir: string;
let reference: { bce: number; microF1: number; epochs: number };
let referenceSeconds: number;

function trainArguments(outDir: string): string[] {
  return [
    cli,
    'train',
    '--data', dataDir,
    '--backbone', sharedBackbone,
    '--mean', '0.5',
    '--std', '0.5',
    '--out', outDir,
    '--epochs', '3',
    '--finetune-epochs', '2',
    '--unfreeze', 'last:2',
    '--batch-size', '16',
    '--micro-batch-size', '8',
    '--threads', '1',
    '--seed', '7',
  ];
}

/** Runs the CLI; with `killAfterMs` it sends SIGKILL at that moment. Resolves with the exit code or signal. */
function runCli(args: string[], killAfterMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr });
    });
  });
}

async function exists(file: string): Promise<boolean> {
  return (await stat(file).catch(() => undefined)) !== undefined;
}

async function finalMetrics(runDir: string): Promise<{ bce: number; microF1: number; epochs: number }> {
  const metrics = JSON.parse(await readFile(path.join(runDir, 'metrics.json'), 'utf8')) as { testAtHalf: { bce: number; microF1: number } };
  const records = csvToRecords(await readFile(path.join(runDir, 'log.csv'), 'utf8'));
  return { bce: metrics.testAtHalf.bce, microF1: metrics.testAtHalf.microF1, epochs: records.length };
}

/** Checks that every file present in a killed run folder is complete and readable. */
async function assertRunFolderLoads(runDir: string): Promise<void> {
  if (await exists(path.join(runDir, 'config.json'))) {
    JSON.parse(await readFile(path.join(runDir, 'config.json'), 'utf8'));
  }
  if (await exists(path.join(runDir, 'log.csv'))) {
    const text = await readFile(path.join(runDir, 'log.csv'), 'utf8');
    for (const record of csvToRecords(text)) {
      assert.ok(Number.isFinite(record.testCost), `log.csv row of epoch ${record.epoch} is incomplete`);
    }
  }
  if (await exists(path.join(runDir, 'checkpoint.safetensors'))) {
    const checkpoint = await readCheckpoint(path.join(runDir, 'checkpoint.safetensors'));
    assert.ok(checkpoint.parameters.size > 0, 'checkpoint holds no parameters');
  }
  if (await exists(path.join(runDir, 'best.safetensors'))) {
    await readSafetensors(path.join(runDir, 'best.safetensors'));
  }
  if (await exists(path.join(runDir, 'model.json'))) {
    JSON.parse(await readFile(path.join(runDir, 'model.json'), 'utf8'));
  }
  if (await exists(path.join(runDir, 'model.onnx'))) {
    const session = await ort.InferenceSession.create(path.join(runDir, 'model.onnx'));
    await session.release();
  }
}

before(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), 'multitag-kill-'));
  dataDir = path.join(workDir, 'data');
  await makeMimlSubset(dataDir, { trainEvery: 20, testEvery: 10 });

  const started = performance.now();
  const run = await runCli(trainArguments(path.join(workDir, 'reference')));
  referenceSeconds = (performance.now() - started) / 1000;
  assert.equal(run.code, 0, `reference run failed:\n${run.stderr}`);
  reference = await finalMetrics(path.join(workDir, 'reference'));
});

after(async () => {
  await rm(workDir, { recursive: true, force: true });
});

test('killed runs resume to same metrics', { timeout: 20 * 60 * 1000 }, async () => {
  const random = new Random(2024);
  const outcomes: string[] = [];

  for (let trial = 0; trial < trials; trial++) {
    const runDir = path.join(workDir, `trial-${trial}`);
    const killAfterMs = Math.round(random.uniform(0.05, 1) * referenceSeconds * 1000);
    const killed = await runCli(trainArguments(runDir), killAfterMs);
    const wasKilled = killed.signal === 'SIGKILL';

    await assertRunFolderLoads(runDir);

    // A process killed before it wrote config.json left no run to resume, so the user starts it again.
    const hasConfig = await exists(path.join(runDir, 'config.json'));
    let finished = killed;
    if (wasKilled && hasConfig) {
      finished = await runCli([cli, 'train', '--resume', runDir, '--threads', '1']);
    } else if (wasKilled) {
      await rm(runDir, { recursive: true, force: true });
      finished = await runCli(trainArguments(runDir));
    }
    assert.equal(finished.code, 0, `trial ${trial} (killed at ${killAfterMs} ms) did not finish:\n${finished.stderr}`);

    const metrics = await finalMetrics(runDir);
    assert.ok(Math.abs(metrics.bce - reference.bce) <= 1e-6, `trial ${trial}: test BCE ${metrics.bce} differs from ${reference.bce}`);
    assert.equal(metrics.microF1, reference.microF1, `trial ${trial}: micro-F1 differs`);
    assert.equal(metrics.epochs, reference.epochs, `trial ${trial}: log.csv has ${metrics.epochs} epochs, expected ${reference.epochs}`);
    const leftovers = (await readdir(runDir)).filter((entry) => entry.endsWith('.tmp'));
    assert.deepEqual(leftovers, [], `trial ${trial}: temporary files left behind`);
    outcomes.push(`${killAfterMs}ms:${wasKilled ? (hasConfig ? 'resumed' : 'restarted') : 'finished'}`);
    await rm(runDir, { recursive: true, force: true });
  }

  // The trials must include real interruptions that were resumed, or the test proves nothing.
  const resumed = outcomes.filter((outcome) => outcome.endsWith('resumed')).length;
  assert.ok(resumed >= trials / 2, `only ${resumed} of ${trials} trials were resumed: ${outcomes.join(', ')}`);
});
