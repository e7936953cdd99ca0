import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { temporaryPathFor, writeFileAtomic, writeJsonAtomic } from '../../src/files/atomic.js';

async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'multitag-atomic-test-'));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Returns an array whose second element throws when read, so the write fails after the first
 * chunk already went to the temporary file. Tests run as root, where permission tricks do not fail.
 */
function chunksThatThrow(first: Uint8Array, error: Error): Uint8Array[] {
  const chunks: Uint8Array[] = [first];
  Object.defineProperty(chunks, 1, {
    enumerable: true,
    get(): Uint8Array {
      throw error;
    },
  });
  return chunks;
}

test('atomic write replaces content', async () => {
  await withTempDir(async (dir) => {
    const target = path.join(dir, 'file.txt');
    await writeFile(target, 'old content');

    await writeFileAtomic(target, [Buffer.from('new '), Buffer.from('content')]);

    assert.equal(await readFile(target, 'utf8'), 'new content');
    assert.deepEqual(await readdir(dir), ['file.txt']);
  });
});

test('atomic write keeps old content on failure', async () => {
  await withTempDir(async (dir) => {
    const target = path.join(dir, 'file.txt');
    await writeFile(target, 'old content');
    const failure = new Error('source failed midway');

    await assert.rejects(writeFileAtomic(target, chunksThatThrow(Buffer.from('partial new content'), failure)), failure);

    assert.equal(await readFile(target, 'utf8'), 'old content');
    assert.deepEqual(await readdir(dir), ['file.txt']);
  });
});

test('atomic write onto folder leaves no temp file', async () => {
  await withTempDir(async (dir) => {
    const target = path.join(dir, 'occupied');
    await mkdir(target);
    await writeFile(path.join(target, 'inside.txt'), 'kept');

    // rename() cannot replace a non-empty folder with a file, so the last step fails.
    await assert.rejects(writeFileAtomic(target, 'new content'), (error: NodeJS.ErrnoException) => typeof error.code === 'string');

    assert.deepEqual(await readdir(dir), ['occupied']);
    assert.equal(await readFile(path.join(target, 'inside.txt'), 'utf8'), 'kept');
  });
});

test('atomic JSON write is indented', async () => {
  await withTempDir(async (dir) => {
    const target = path.join(dir, 'value.json');

    await writeJsonAtomic(target, { a: [1, 2], b: 'text' });

    const text = await readFile(target, 'utf8');
    assert.deepEqual(JSON.parse(text), { a: [1, 2], b: 'text' });
    assert.ok(text.endsWith('\n'), 'the file ends with a line break');
    assert.ok(text.includes('\n  "a"'), 'keys are indented by two spaces');
  });
});

test('temporary paths are unique and beside target', () => {
  const target = path.join('/some/folder', 'model.onnx');

  const first = temporaryPathFor(target);
  const second = temporaryPathFor(target);

  assert.notEqual(first, second);
  assert.equal(path.dirname(first), '/some/folder');
  assert.ok(path.basename(first).startsWith('.model.onnx.'), `hidden name derived from the target: ${first}`);
});
