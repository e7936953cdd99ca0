// System faults around a training run: an output path that cannot be written, a disk that fills during
// the run, and a backbone file that has gone. Each must end with one clear message, exit code 1, and
// leave the files written before the fault complete and usable. Tests that need a tmpfs mount skip when
// mounting is not permitted (it needs root or CAP_SYS_ADMIN).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { writeFileAtomic } from '../../src/files/atomic.js';
import { readSafetensors } from '../../src/files/safetensors.js';
import { encodeModel, readModel } from '../../src/onnx/model.js';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { csvToRecords } from '../../src/train/record.js';
import { assertUserError, copyMimlSubset, errorMessages, mountTmpfs, runCli, sharedBackbone, trainArguments, unmount, type CliOutcome, type DataFolder } from './harness.js';

let workDir: string;
let data: DataFolder;
const mounts: string[] = [];

before(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), 'multitag-system-faults-'));
  // 30 training and 16 test images.
  data = await copyMimlSubset(path.join(workDir, 'data'), 32, 15);
});

after(async () => {
  for (const mount of mounts) {
    await unmount(mount);
  }
  await rm(workDir, { recursive: true, force: true });
});

/** Mounts a tmpfs under the work folder and remembers it for cleanup; returns its path or the skip reason. */
async function tmpfs(name: string, sizeKiB: number, readOnly = false): Promise<{ dir: string; skip?: string }> {
  const dir = path.join(workDir, name);
  const skip = await mountTmpfs(dir, sizeKiB, readOnly);
  if (!skip) {
    mounts.push(dir);
  }
  return { dir, skip };
}

/** Writes zeros to `file` until the file system reports ENOSPC. */
async function fillDisk(file: string): Promise<void> {
  const handle = await open(file, 'w');
  const block = Buffer.alloc(1 << 20);
  try {
    for (;;) {
      await handle.write(block);
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') {
      throw error;
    }
  } finally {
    await handle.close();
  }
}

test('atomic write on full disk fails', async (t) => {
  const { dir, skip } = await tmpfs('small-disk', 256);
  if (skip) {
    t.skip(skip);
    return;
  }
  const target = path.join(dir, 'checkpoint.bin');
  await writeFile(target, 'earlier content');

  await assert.rejects(writeFileAtomic(target, new Uint8Array(1 << 20)), (error: NodeJS.ErrnoException) => {
    assert.equal(error.code, 'ENOSPC');
    assert.equal(error.path, target, 'the error names the target, not the temporary file');
    return true;
  });

  assert.equal(await readFile(target, 'utf8'), 'earlier content');
  assert.deepEqual(await readdir(dir), ['checkpoint.bin'], 'no temporary file is left');
});

test('out path under a file is reported', async () => {
  const file = path.join(workDir, 'notes.txt');
  await writeFile(file, 'a file, not a folder\n');
  const outDir = path.join(file, 'run');

  const outcome = await runCli(trainArguments(data.dir, outDir));

  assertUserError(outcome, [`Could not create the run folder ${outDir}: ${file} is a file, not a folder. Fix the path or choose another --out folder.`]);
  assert.equal(await readFile(file, 'utf8'), 'a file, not a folder\n');
});

describe('read-only file system', () => {
  let mount: { dir: string; skip?: string };

  before(async () => {
    mount = await tmpfs('read-only', 64, true);
  });

  test('out folder under read-only mount', async (t) => {
    if (mount.skip) {
      t.skip(mount.skip);
      return;
    }
    const outDir = path.join(mount.dir, 'run');

    const outcome = await runCli(trainArguments(data.dir, outDir));

    assertUserError(outcome, [`Could not create the run folder ${outDir}: ${mount.dir} is on a read-only file system.`]);
    assert.doesNotMatch(outcome.stderr, /training on \d+ images/, 'the folder is checked before the images are decoded');
    assert.deepEqual(await readdir(mount.dir), []);
  });

  test('read-only out folder is reported', async (t) => {
    if (mount.skip) {
      t.skip(mount.skip);
      return;
    }

    const outcome = await runCli(trainArguments(data.dir, mount.dir));

    assertUserError(outcome, [`--out ${mount.dir} is on a read-only file system. Choose a writable path.`]);
    assert.doesNotMatch(outcome.stderr, /training on \d+ images/, 'the folder is checked before the images are decoded');
    assert.deepEqual(await readdir(mount.dir), []);
  });
});

/** SHA-256 of every file in `dir`, by name, to show that a failed command changed nothing. */
async function folderDigest(dir: string): Promise<Record<string, string>> {
  const digest: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) {
    digest[name] = createHash('sha256').update(await readFile(path.join(dir, name))).digest('hex');
  }
  return digest;
}

describe('disk full during a run', () => {
  let disk: { dir: string; skip?: string };
  let runDir: string;
  let filler: string;
  let backbone: string;
  let outcome: CliOutcome;
  let filled = false;

  before(async () => {
    // 40 MiB hold the run folder of epoch 1 (model.onnx is about 9 MB) with room to spare, until
    // the filler takes the rest.
    disk = await tmpfs('full-disk', 40 * 1024);
    if (disk.skip) {
      return;
    }
    runDir = path.join(disk.dir, 'run');
    filler = path.join(disk.dir, 'filler');
    // A copy of the backbone, so that later tests can move and change it.
    backbone = path.join(workDir, 'backbone', 'model.onnx');
    await mkdir(path.dirname(backbone));
    await copyFile(sharedBackbone, backbone);

    const checkpoint = path.join(runDir, 'checkpoint.safetensors');
    let filling: Promise<void> | undefined;
    const args = trainArguments(data.dir, runDir, ['--backbone', backbone, '--epochs', '3', '--batch-size', '8']);
    outcome = await runCli(args, (child) => {
      // The checkpoint appears only once its rename is done, so epoch 1 is safely on disk when the filler starts.
      const timer = setInterval(() => {
        if (existsSync(checkpoint)) {
          clearInterval(timer);
          filling = fillDisk(filler);
        }
      }, 10);
      child.on('close', () => clearInterval(timer));
    });
    if (filling) {
      await filling;
      filled = true;
    }
  });

  test('full disk stops the run', (t) => {
    if (disk.skip) {
      t.skip(disk.skip);
      return;
    }
    assert.ok(filled, `the disk was filled after the first checkpoint:\n${outcome.stderr}`);

    assertUserError(outcome, ['could not be written because the disk is full.', `Free space, then continue the run with: multitag train --resume ${runDir}`]);
    const message = errorMessages(outcome.stderr)[0];
    assert.ok(message.startsWith(`multitag: ${runDir}/`), `the message names a file in the run folder: ${message}`);
  });

  test('earlier files stay complete', async (t) => {
    if (disk.skip) {
      t.skip(disk.skip);
      return;
    }
    const files = await readdir(runDir);
    assert.deepEqual(files.filter((file) => file.endsWith('.tmp')), [], 'no temporary file is left');

    const config = JSON.parse(await readFile(path.join(runDir, 'config.json'), 'utf8')) as { format: string };
    assert.equal(config.format, 'multitag-run');
    const checkpoint = await readCheckpoint(path.join(runDir, 'checkpoint.safetensors'));
    assert.ok(checkpoint.state.epoch >= 1, `checkpoint of epoch ${checkpoint.state.epoch}`);
    assert.ok(checkpoint.parameters.size > 0, 'the checkpoint holds parameters');
    const records = csvToRecords(await readFile(path.join(runDir, 'log.csv'), 'utf8'));
    assert.ok(records.length >= checkpoint.state.epoch, `log.csv has ${records.length} rows`);
    for (const record of records) {
      assert.ok(Number.isFinite(record.seconds), `log.csv row of epoch ${record.epoch} is complete`);
    }
    await readSafetensors(path.join(runDir, 'best.safetensors'));
    const session = await ort.InferenceSession.create(path.join(runDir, 'model.onnx'));
    await session.release();
  });

  test('resume without backbone is reported', async (t) => {
    if (disk.skip) {
      t.skip(disk.skip);
      return;
    }
    await rm(filler, { force: true });
    const before = await folderDigest(runDir);
    const moved = `${backbone}.moved`;
    await rename(backbone, moved);

    let resumed: CliOutcome;
    try {
      resumed = await runCli(['train', '--resume', runDir, '--threads', '1']);
    } finally {
      await rename(moved, backbone);
    }

    assertUserError(resumed, [`Backbone ${backbone}, which ${runDir} was trained with, was not found. Put the file back at that path to resume the run.`]);
    assert.deepEqual(await folderDigest(runDir), before, 'the run folder is unchanged');
  });

  test('resume with changed backbone is rejected', async (t) => {
    if (disk.skip) {
      t.skip(disk.skip);
      return;
    }
    const before = await folderDigest(runDir);
    const original = `${backbone}.original`;
    await rename(backbone, original);
    // Same graph and weights with another doc string: a valid model whose SHA-256 differs.
    const changed = await readModel(original);
    changed.docString = 'a different export';
    await writeFile(backbone, encodeModel(changed));

    let resumed: CliOutcome;
    try {
      resumed = await runCli(['train', '--resume', runDir, '--threads', '1']);
    } finally {
      await rename(original, backbone);
    }

    assertUserError(resumed, [`Backbone ${backbone} has changed since ${runDir} was trained`, 'Put the original file back to resume the run']);
    assert.deepEqual(await folderDigest(runDir), before, 'the run folder is unchanged');
  });

  test('resume after freeing space finishes', async (t) => {
    if (disk.skip) {
      t.skip(disk.skip);
      return;
    }
    await rm(filler, { force: true });

    const resumed = await runCli(['train', '--resume', runDir, '--threads', '1']);

    assert.equal(resumed.code, 0, resumed.stderr);
    const records = csvToRecords(await readFile(path.join(runDir, 'log.csv'), 'utf8'));
    assert.deepEqual(records.map((record) => record.epoch), [1, 2, 3]);
    const files = await readdir(runDir);
    for (const name of ['metrics.json', 'model.onnx', 'report.html']) {
      assert.ok(files.includes(name), `${name} is in the run folder: ${files.join(', ')}`);
    }
  });
});
