// Shared helpers of the robustness tests: small data folders copied from the shared MIML scene images,
// the built CLI run as a child process, checks of its output as a user reads it, and tmpfs mounts.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { copyFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { mimlDir, repoRoot, sharedBackbone } from '../train/mimlSubset.js';

export { mimlDir, sharedBackbone };

const cliPath = path.join(repoRoot, 'dist/src/cli/main.js');
const execFileAsync = promisify(execFile);

/** One row of a label CSV: the file name relative to the image folder and its 0/1 cells. */
export interface LabelRow {
  file: string;
  cells: string[];
}

/** A data folder made by {@link copyMimlSubset}. */
export interface DataFolder {
  dir: string;
  header: string;
  train: LabelRow[];
  test: LabelRow[];
}

/** Reads a shared MIML label CSV as its header and rows. */
async function readMimlCsv(split: 'train' | 'test'): Promise<{ header: string; rows: LabelRow[] }> {
  const lines = (await readFile(path.join(mimlDir, `${split}_label.csv`), 'utf8')).trimEnd().split(/\r?\n/);
  const rows = lines.slice(1).map((line) => {
    const [file, ...cells] = line.split(',');
    return { file, cells };
  });
  return { header: lines[0], rows };
}

/**
 * Copies every `trainEvery`-th training image and every `testEvery`-th test image of the shared MIML
 * set into `dir`, with their label CSVs. The shared CSVs are grouped by label, so striding keeps every
 * label. Copies, unlike the links of mimlSubset.ts, let a test add, break and remove files.
 */
export async function copyMimlSubset(dir: string, trainEvery: number, testEvery: number): Promise<DataFolder> {
  const folder: DataFolder = { dir, header: '', train: [], test: [] };
  for (const [split, every] of [['train', trainEvery], ['test', testEvery]] as const) {
    const { header, rows } = await readMimlCsv(split);
    folder.header = header;
    await mkdir(path.join(dir, split), { recursive: true });
    const kept = rows.filter((_, index) => index % every === 0);
    for (const row of kept) {
      await copyFile(path.join(mimlDir, split, row.file), path.join(dir, split, row.file));
    }
    folder[split] = kept;
  }
  await writeLabelCsvs(folder);
  return folder;
}

/** Writes train_label.csv and test_label.csv from the rows of `folder`. */
export async function writeLabelCsvs(folder: DataFolder): Promise<void> {
  for (const split of ['train', 'test'] as const) {
    const lines = [folder.header, ...folder[split].map((row) => [row.file, ...row.cells].join(','))];
    await writeFile(path.join(folder.dir, `${split}_label.csv`), `${lines.join('\n')}\n`);
  }
}

/** Output of one CLI run. */
export interface CliOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI with `args`; `onStart` receives the child process, for example to watch its run folder. */
export function runCli(args: readonly string[], onStart?: (child: ReturnType<typeof spawn>) => void): Promise<CliOutcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { cwd: repoRoot, env: { ...process.env, CI: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    onStart?.(child);
  });
}

/**
 * Returns the arguments of a small, fast training run: the shared backbone with mean and std 0.5, one
 * thread and one frozen epoch. Later flags in `extra` override earlier ones, and fine-tuning runs only
 * when `extra` sets --finetune-epochs.
 */
export function trainArguments(dataDir: string, outDir: string, extra: readonly string[] = []): string[] {
  const args = ['train', '--data', dataDir, '--backbone', sharedBackbone, '--mean', '0.5', '--std', '0.5', '--out', outDir];
  args.push('--threads', '1', '--batch-size', '16', '--epochs', '1');
  if (!extra.includes('--finetune-epochs')) {
    args.push('--no-finetune');
  }
  return [...args, ...extra];
}

/** Returns the lines of stderr that start an error message of the CLI or of commander. */
export function errorMessages(stderr: string): string[] {
  return stderr.split('\n').filter((line) => /^(multitag: |error: )/.test(line));
}

/**
 * Checks the output of a user mistake or a system fault: exit code 1, exactly one error message, no
 * stack trace and no internal-error banner, and every string of `mentions` somewhere in stderr.
 */
export function assertUserError(outcome: CliOutcome, mentions: readonly string[]): void {
  assert.equal(outcome.code, 1, `exit code; stderr:\n${outcome.stderr}`);
  assert.doesNotMatch(outcome.stderr, /^\s+at /m, `no stack trace:\n${outcome.stderr}`);
  assert.doesNotMatch(outcome.stderr, /internal error/, `not reported as a bug:\n${outcome.stderr}`);
  assert.equal(errorMessages(outcome.stderr).length, 1, `one error message:\n${outcome.stderr}`);
  for (const mention of mentions) {
    assert.ok(outcome.stderr.includes(mention), `stderr names ${mention}:\n${outcome.stderr}`);
  }
}

/** Returns the message of the log lines of `level` (pino-pretty's WARN, INFO, ...) in stderr. */
export function logLines(stderr: string, level: 'INFO' | 'WARN' | 'ERROR'): string[] {
  const prefix = new RegExp(`^\\[[0-9:]+\\] ${level}: `);
  return stderr
    .split('\n')
    .filter((line) => prefix.test(line))
    .map((line) => line.replace(prefix, ''));
}

export async function exists(file: string): Promise<boolean> {
  return (await stat(file).catch(() => undefined)) !== undefined;
}

/**
 * Mounts a tmpfs of `sizeKiB` at `dir` (read-only with `readOnly`). Returns undefined on success, or
 * the reason when mounting fails, as it does without root or CAP_SYS_ADMIN, so the caller can skip its test.
 */
export async function mountTmpfs(dir: string, sizeKiB: number, readOnly = false): Promise<string | undefined> {
  await mkdir(dir, { recursive: true });
  const options = `${readOnly ? 'ro,' : ''}size=${sizeKiB}k`;
  try {
    await execFileAsync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir]);
    return undefined;
  } catch (error) {
    return `cannot mount a tmpfs here (${(error as Error).message.split('\n')[0]})`;
  }
}

/** Unmounts `dir` if something is mounted there; errors are ignored, so cleanup never hides a test failure. */
export async function unmount(dir: string): Promise<void> {
  await execFileAsync('umount', [dir]).catch(() => undefined);
}
