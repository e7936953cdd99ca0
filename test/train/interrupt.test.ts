// Ctrl-C (SIGINT) during training: the epoch whose log line was shown is kept, no temporary file is
// left, and `train --resume` continues from there.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { resume } from '../../src/train/train.js';
import { csvToRecords } from '../../src/train/record.js';
import { makeMimlSubset, repoRoot, sharedBackbone } from './mimlSubset.js';

const cli = path.join(repoRoot, 'dist/src/cli/main.js');

let workDir: string;
let dataDir: string;

before(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), 'multitag-interrupt-'));
  dataDir = path.join(workDir, 'data');
  await makeMimlSubset(dataDir, { trainEvery: 20, testEvery: 10 });
});

after(async () => {
  await rm(workDir, { recursive: true, force: true });
});

interface Outcome {
  code: number | null;
  stderr: string;
  /** Whether the signal was sent at all: the pattern appeared before the process ended. */
  signalled: boolean;
}

/** Runs the CLI and sends SIGINT as soon as stderr matches `pattern`. */
function runAndInterrupt(args: string[], pattern: RegExp): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let signalled = false;
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (!signalled && pattern.test(stderr)) {
        signalled = true;
        child.kill('SIGINT');
      }
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr, signalled }));
  });
}

test('Ctrl-C after an epoch line keeps that epoch', { timeout: 5 * 60 * 1000 }, async () => {
  const runDir = path.join(workDir, 'run');
  const args = ['train', '--data', dataDir, '--backbone', sharedBackbone, '--mean', '0.5', '--std', '0.5', '--out', runDir];
  args.push('--epochs', '4', '--no-finetune', '--cache-views', '0', '--batch-size', '16', '--threads', '1', '--seed', '7', '--no-report');

  const interrupted = await runAndInterrupt(args, /epoch 1 \(adaptation 1\)/);

  assert.ok(interrupted.signalled, `the epoch line never appeared:\n${interrupted.stderr}`);
  assert.equal(interrupted.code, 130, `exit code; stderr:\n${interrupted.stderr}`);
  assert.match(interrupted.stderr, new RegExp(`multitag: interrupted\\. Continue the run with: multitag train --resume ${runDir}`));
  const checkpoint = await readCheckpoint(path.join(runDir, 'checkpoint.safetensors'));
  assert.ok(checkpoint.state.epoch >= 1, `checkpoint of epoch ${checkpoint.state.epoch}`);
  const keptRecords = csvToRecords(await readFile(path.join(runDir, 'log.csv'), 'utf8'));
  assert.ok(keptRecords.length >= 1, 'log.csv has the epoch that was shown');
  const leftovers = (await readdir(runDir)).filter((entry) => entry.endsWith('.tmp'));
  assert.deepEqual(leftovers, [], 'no temporary file is left');

  const resumed = await runAndInterrupt(['train', '--resume', runDir, '--threads', '1'], /(?!)/);

  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, new RegExp(`resuming after epoch ${checkpoint.state.epoch}`));
  const records = csvToRecords(await readFile(path.join(runDir, 'log.csv'), 'utf8'));
  assert.deepEqual(records[0], keptRecords[0], 'the kept epoch is unchanged after resuming');
  assert.ok(records.length > checkpoint.state.epoch, `training went on after epoch ${checkpoint.state.epoch}`);
});

test('resume in fine-tuning skips cached views', { timeout: 5 * 60 * 1000 }, async () => {
  const runDir = path.join(workDir, 'finetune-run');
  const args = ['train', '--data', dataDir, '--backbone', sharedBackbone, '--mean', '0.5', '--std', '0.5', '--out', runDir];
  args.push('--epochs', '2', '--cache-views', '1', '--finetune-epochs', '3', '--unfreeze', 'last:2', '--batch-size', '16', '--threads', '1', '--seed', '7', '--no-report');

  const interrupted = await runAndInterrupt(args, /epoch \d+ \(finetuning 1\)/);
  assert.ok(interrupted.signalled, `the fine-tuning epoch line never appeared:\n${interrupted.stderr}`);
  assert.equal(interrupted.code, 130, `exit code; stderr:\n${interrupted.stderr}`);
  const checkpoint = await readCheckpoint(path.join(runDir, 'checkpoint.safetensors'));
  assert.equal(checkpoint.state.phase, 'finetuning');

  // The cached views serve only the adaptation phase, which this run has finished.
  const tasks = new Set<string>();
  const result = await resume(runDir, { onProgress: (progress) => tasks.add(progress.task) });

  assert.ok(result.records.length > checkpoint.state.epoch, `training went on after epoch ${checkpoint.state.epoch}`);
  assert.deepEqual([...tasks].filter((task) => task.startsWith('augmented view')), []);
  assert.ok(tasks.size > 0, 'progress was reported at all');
});
