import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { makeMimlSubset, mimlDir, repoRoot, sharedBackbone } from '../train/mimlSubset.js';

const cliPath = path.join(repoRoot, 'dist/src/cli/main.js');

interface CliOutcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI with `args` from the repository root and collects its output. */
function runCli(args: readonly string[]): Promise<CliOutcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { cwd: repoRoot, env: { ...process.env, CI: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

interface PredictionRecord {
  file: string;
  labels: string[];
  probabilities: Record<string, number>;
}

interface ModelJson {
  labels: string[];
  thresholds: number[];
}

let tempDir: string;
let dataDir: string;
let runDir: string;
let imagesDir: string;
let model: ModelJson;
const testImage = (name: string): string => path.join(mimlDir, 'test', name);

before(async () => {
  tempDir = await mkdtemp(path.join(tmpdir(), 'multitag-cli-test-'));
  dataDir = path.join(tempDir, 'data');
  runDir = path.join(tempDir, 'run');
  imagesDir = path.join(tempDir, 'images');
  // Every 12th training image (80) and every 6th test image (40).
  await makeMimlSubset(dataDir, { trainEvery: 12, testEvery: 6 });
  await mkdir(path.join(imagesDir, 'nested'), { recursive: true });
  await copyFile(testImage('1003.jpg'), path.join(imagesDir, 'a.jpg'));
  await copyFile(testImage('1007.jpg'), path.join(imagesDir, 'nested', 'b.jpg'));
  await writeFile(path.join(imagesDir, 'notes.txt'), 'not an image, and not named like one');

  const outcome = await runCli([
    'train',
    '--data', dataDir,
    '--backbone', sharedBackbone,
    '--mean', '0.5',
    '--std', '0.5',
    '--out', runDir,
    '--epochs', '2',
    '--batch-size', '16',
    '--no-finetune',
    '--threads', '2',
  ]);
  if (outcome.code !== 0) {
    throw new Error(`multitag train failed with exit code ${outcome.code}:\n${outcome.stderr}`);
  }
  model = JSON.parse(await readFile(path.join(runDir, 'model.json'), 'utf8')) as ModelJson;
});

after(async () => {
  await rm(tempDir, { recursive: true, force: true });
});

function parseRecords(stdout: string): PredictionRecord[] {
  return JSON.parse(stdout) as PredictionRecord[];
}

function assertRecordShape(record: PredictionRecord, thresholds: readonly number[]): void {
  assert.deepEqual(Object.keys(record).sort(), ['file', 'labels', 'probabilities']);
  assert.deepEqual(Object.keys(record.probabilities), model.labels, `probability keys of ${record.file}`);
  for (const [label, probability] of Object.entries(record.probabilities)) {
    assert.equal(typeof probability, 'number', `${record.file} ${label} is a number`);
    assert.ok(probability >= 0, `${record.file} ${label}: ${probability} >= 0`);
    assert.ok(probability <= 1, `${record.file} ${label}: ${probability} <= 1`);
  }
  const expected = model.labels.filter((label, index) => record.probabilities[label] >= thresholds[index]);
  assert.deepEqual(record.labels, expected, `labels of ${record.file}`);
}

/** Checks the output of a user mistake: exit code 1, one message naming `value`, and no stack trace. */
function assertUserError(outcome: CliOutcome, value: string): void {
  assert.equal(outcome.code, 1, `exit code; stderr:\n${outcome.stderr}`);
  assert.ok(outcome.stderr.includes(value), `stderr names ${value}:\n${outcome.stderr}`);
  assert.doesNotMatch(outcome.stderr, /^\s+at /m, 'no stack trace');
  const messages = outcome.stderr.split('\n').filter((line) => /^(multitag: |error: )/.test(line));
  assert.equal(messages.length, 1, `one error message:\n${outcome.stderr}`);
}

test('predict JSON for files and folder', async () => {
  const files = [testImage('10.jpg'), testImage('1012.jpg')];

  const outcome = await runCli(['predict', '--model', runDir, '--threads', '2', ...files, imagesDir]);

  assert.equal(outcome.code, 0, outcome.stderr);
  const records = parseRecords(outcome.stdout);
  const expectedFiles = [...files, path.join(imagesDir, 'a.jpg'), path.join(imagesDir, 'nested', 'b.jpg')];
  assert.deepEqual(records.map((record) => record.file), expectedFiles);
  for (const record of records) {
    assertRecordShape(record, model.thresholds);
  }
});

test('predict folder of symbolic links', async () => {
  const linked = path.join(tempDir, 'linked');
  await mkdir(linked);
  await symlink(testImage('10.jpg'), path.join(linked, 'first.jpg'));
  await symlink(testImage('1012.jpg'), path.join(linked, 'second.jpg'));

  const outcome = await runCli(['predict', '--model', runDir, '--threads', '2', linked]);

  assert.equal(outcome.code, 0, outcome.stderr);
  assert.deepEqual(parseRecords(outcome.stdout).map((record) => path.basename(record.file)), ['first.jpg', 'second.jpg']);
});

test('predict CSV header and rows', async () => {
  const outcome = await runCli(['predict', '--model', runDir, '--threads', '2', '--format', 'csv', imagesDir]);

  assert.equal(outcome.code, 0, outcome.stderr);
  const lines = outcome.stdout.trimEnd().split('\n');
  assert.equal(lines[0], ['file', 'labels', ...model.labels].join(','));
  assert.equal(lines.length, 3);
  for (const line of lines.slice(1)) {
    const cells = line.split(',');
    const probabilities = cells.slice(2).map(Number);
    assert.equal(cells.length, 2 + model.labels.length, line);
    assert.ok(probabilities.every((value) => value >= 0 && value <= 1), line);
    const expected = model.labels.filter((_, index) => probabilities[index] >= model.thresholds[index]);
    assert.equal(cells[1], expected.join(';'), line);
  }
});

test('predict threshold 0 and 1', async () => {
  const file = testImage('10.jpg');

  const all = parseRecords((await runCli(['predict', '--model', runDir, '--threads', '2', '--threshold', '0', file])).stdout);
  const none = parseRecords((await runCli(['predict', '--model', runDir, '--threads', '2', '--threshold', '1', file])).stdout);

  assert.deepEqual(all[0].labels, model.labels);
  assertRecordShape(all[0], model.labels.map(() => 0));
  const certain = model.labels.filter((label) => none[0].probabilities[label] === 1);
  assert.deepEqual(none[0].labels, certain);
});

test('evaluate JSON on data folder', async () => {
  const outcome = await runCli(['evaluate', '--model', runDir, '--threads', '2', '--data', dataDir, '--json']);

  assert.equal(outcome.code, 0, outcome.stderr);
  const metrics = JSON.parse(outcome.stdout) as Record<string, unknown> & { perLabel: Record<string, Record<string, unknown>> };
  for (const key of ['microF1', 'macroF1', 'mAP', 'exactMatch', 'hammingLoss', 'bce']) {
    assert.equal(typeof metrics[key], 'number', `${key} is a number`);
  }
  assert.deepEqual(Object.keys(metrics.perLabel), model.labels);
  for (const [label, values] of Object.entries(metrics.perLabel)) {
    for (const key of ['precision', 'recall', 'f1', 'ap']) {
      assert.equal(typeof values[key], 'number', `${label} ${key} is a number`);
    }
  }
});

test('evaluate JSON with CSV and images', async () => {
  const fromData = JSON.parse((await runCli(['evaluate', '--model', runDir, '--threads', '2', '--data', dataDir, '--json'])).stdout) as { microF1: number; bce: number };

  const outcome = await runCli(['evaluate', '--model', runDir, '--threads', '2', '--csv', path.join(dataDir, 'test_label.csv'), '--images', path.join(dataDir, 'test'), '--json']);

  assert.equal(outcome.code, 0, outcome.stderr);
  const metrics = JSON.parse(outcome.stdout) as { microF1: number; bce: number };
  assert.equal(metrics.microF1, fromData.microF1, 'the same split gives the same micro-F1');
  assert.equal(metrics.bce, fromData.bce, 'the same split gives the same BCE');
});

test('version is printed', async () => {
  const packageJson = JSON.parse(await readFile(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };

  const outcome = await runCli(['--version']);

  assert.equal(outcome.code, 0, outcome.stderr);
  assert.equal(outcome.stdout.trim(), packageJson.version);
});

test('grid file without .png is reported', async () => {
  const gridPath = path.join(tempDir, 'grid.jpg');

  const outcome = await runCli(['evaluate', '--model', runDir, '--threads', '2', '--data', dataDir, '--grid', gridPath]);

  assertUserError(outcome, gridPath);
  assert.match(outcome.stderr, /must name a \.png file/);
});

test('images folder of another split is one error', async () => {
  const csv = path.join(dataDir, 'test_label.csv');

  const outcome = await runCli(['evaluate', '--model', runDir, '--threads', '2', '--csv', csv, '--images', path.join(dataDir, 'train'), '--json']);

  assertUserError(outcome, path.join(dataDir, 'train'));
  assert.match(outcome.stderr, /none of the \d+ images listed in this CSV is in/);
});

test('resume of a finished run trains nothing', async () => {
  const logBefore = await readFile(path.join(runDir, 'log.csv'), 'utf8');

  const outcome = await runCli(['train', '--resume', runDir, '--threads', '2']);

  assert.equal(outcome.code, 0, outcome.stderr);
  assert.match(outcome.stderr, /finished training already, so nothing is resumed/);
  assert.doesNotMatch(outcome.stderr, /resuming after epoch/);
  assert.match(outcome.stdout, /Test metrics of the best model \(threshold 0\.5\):\n\s+micro-F1\s+0\.\d{4}/);
  assert.equal(await readFile(path.join(runDir, 'log.csv'), 'utf8'), logBefore, 'log.csv is unchanged');
});

test('resume completes a killed report', async () => {
  // As if the process was killed while writing grid.png: the temporary file is left and grid.png is gone.
  const temporary = path.join(runDir, '.grid.png.4553.d1932b9a.tmp');
  await writeFile(temporary, 'half of a picture');
  await rm(path.join(runDir, 'grid.png'), { force: true });

  const outcome = await runCli(['train', '--resume', runDir, '--threads', '2']);

  assert.equal(outcome.code, 0, outcome.stderr);
  assert.match(outcome.stderr, /finished training already, so only its missing report files are written/);
  const files = await readdir(runDir);
  assert.deepEqual(files.filter((entry) => entry.endsWith('.tmp')), []);
  assert.ok(files.includes('grid.png'), `files: ${files.join(', ')}`);
});

test('resume keeps --no-report', async () => {
  const quietRun = path.join(tempDir, 'quiet-run');
  const trainArguments = ['--data', dataDir, '--backbone', sharedBackbone, '--mean', '0.5', '--std', '0.5', '--epochs', '1', '--batch-size', '16', '--no-finetune'];
  const first = await runCli(['train', ...trainArguments, '--out', quietRun, '--threads', '2', '--no-report']);
  assert.equal(first.code, 0, first.stderr);
  const config = JSON.parse(await readFile(path.join(quietRun, 'config.json'), 'utf8')) as { training: { callerSettings?: unknown } };
  assert.deepEqual(config.training.callerSettings, { report: false });

  const resumed = await runCli(['train', '--resume', quietRun, '--threads', '2']);

  assert.equal(resumed.code, 0, resumed.stderr);
  const files = await readdir(quietRun);
  assert.ok(files.includes('model.onnx'), `the resumed run has its model: ${files.join(', ')}`);
  assert.ok(!files.includes('report.html'), `no report.html after resuming a run started with --no-report: ${files.join(', ')}`);
});

test('missing data folder is reported', async () => {
  const missing = path.join(tempDir, 'no-data');

  assertUserError(await runCli(['train', '--data', missing, '--backbone', sharedBackbone, '--mean', '0.5', '--std', '0.5', '--out', path.join(tempDir, 'unused')]), missing);
});

test('missing backbone is reported', async () => {
  const missing = path.join(tempDir, 'no-model.onnx');

  assertUserError(await runCli(['train', '--data', dataDir, '--backbone', missing, '--mean', '0.5', '--std', '0.5', '--out', path.join(tempDir, 'unused')]), missing);
});

test('non-numeric epochs is reported', async () => {
  const outcome = await runCli(['train', '--data', dataDir, '--backbone', sharedBackbone, '--epochs', 'abc', '--out', path.join(tempDir, 'unused')]);

  assertUserError(outcome, 'abc');
  assert.match(outcome.stderr, /^multitag: option '--epochs <count>' argument 'abc' is invalid\. Expected a whole number from 1 up, got "abc"\./m);
});

test('mean with two numbers is reported', async () => {
  const outcome = await runCli(['train', '--data', dataDir, '--backbone', sharedBackbone, '--mean', '0.5,0.5', '--std', '0.5', '--out', path.join(tempDir, 'unused')]);

  assertUserError(outcome, '0.5,0.5');
  assert.match(outcome.stderr, /--mean/);
});

test('out folder of a finished run is reported', async () => {
  const outcome = await runCli(['train', '--data', dataDir, '--backbone', sharedBackbone, '--mean', '0.5', '--std', '0.5', '--out', runDir]);

  assertUserError(outcome, runDir);
  assert.match(outcome.stderr, /contains a finished run \(it has metrics\.json\)\. Choose a new folder\./);
});

test('non-empty out folder is reported', async () => {
  const occupied = path.join(tempDir, 'occupied');
  await mkdir(occupied, { recursive: true });
  await writeFile(path.join(occupied, 'notes.txt'), 'a file of another project\n');

  const outcome = await runCli(['train', '--data', dataDir, '--backbone', sharedBackbone, '--mean', '0.5', '--std', '0.5', '--out', occupied]);

  assertUserError(outcome, occupied);
  assert.match(outcome.stderr, /is not empty \(it contains notes\.txt\)/);
});

test('predict on missing path is reported', async () => {
  const missing = path.join(tempDir, 'no-such-image.jpg');

  assertUserError(await runCli(['predict', '--model', runDir, missing]), missing);
});

test('predict reports a text file named .jpg', async () => {
  const fake = path.join(tempDir, 'x.jpg');
  await writeFile(fake, 'this is text, not a JPEG\n');
  const good = testImage('10.jpg');

  const outcome = await runCli(['predict', '--model', runDir, '--threads', '2', good, fake]);

  assert.equal(outcome.code, 1, outcome.stderr);
  assert.ok(outcome.stderr.includes(fake), `stderr names ${fake}:\n${outcome.stderr}`);
  assert.doesNotMatch(outcome.stderr, /^\s+at /m, 'no stack trace');
  assert.deepEqual(parseRecords(outcome.stdout).map((record) => record.file), [good], 'the good image is still tagged');
});

test('evaluate without data is reported', async () => {
  const outcome = await runCli(['evaluate', '--model', runDir]);

  assertUserError(outcome, '--data');
  assert.match(outcome.stderr, /--csv/);
});

test('unknown log format is reported', async () => {
  const outcome = await runCli(['--log-format', 'xml', 'evaluate', '--model', runDir, '--data', dataDir]);

  assertUserError(outcome, 'xml');
  assert.match(outcome.stderr, /--log-format/);
});
