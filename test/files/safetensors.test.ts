import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  SafetensorsFormatError,
  writeSafetensors,
  type SafetensorsContent,
} from '../../src/files/safetensors.js';

async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'multitag-safetensors-test-'));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function sampleContent(): SafetensorsContent {
  return {
    tensors: new Map([
      ['head.weight', { shape: [2, 3], data: Float32Array.from([1.5, -2.25, 3e-8, 1e30, -0, 7]) }],
      ['head.bias', { shape: [2], data: Float32Array.from([0.125, -4]) }],
      ['scalar', { shape: [], data: Float32Array.from([42]) }],
    ]),
    metadata: { format: 'multitag-test', state: JSON.stringify({ epoch: 3 }) },
  };
}

function concatenate(chunks: readonly Uint8Array[]): Buffer {
  return Buffer.concat(chunks.map((chunk) => Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)));
}

function headerLengthOf(bytes: Uint8Array): number {
  return Number(Buffer.from(bytes.buffer, bytes.byteOffset, 8).readBigUInt64LE(0));
}

test('safetensors round trip', async () => {
  await withTempDir(async (dir) => {
    const file = path.join(dir, 'weights.safetensors');
    const content = sampleContent();

    await writeSafetensors(file, content);
    const read = await readSafetensors(file);

    assert.deepEqual([...read.tensors.keys()], [...content.tensors.keys()]);
    for (const [name, tensor] of content.tensors) {
      const copy = read.tensors.get(name)!;
      assert.deepEqual(copy.shape, tensor.shape, `shape of ${name}`);
      assert.deepEqual(copy.data, tensor.data, `values of ${name}`);
    }
    assert.deepEqual(read.metadata, content.metadata);
  });
});

test('safetensors layout follows the format', async () => {
  const bytes = concatenate(encodeSafetensors(sampleContent()));
  const headerLength = headerLengthOf(bytes);
  const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + headerLength)).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>;

  assert.deepEqual(header['head.weight'], { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] });
  assert.deepEqual(header['head.bias'], { dtype: 'F32', shape: [2], data_offsets: [24, 32] });
  assert.deepEqual(header.scalar, { dtype: 'F32', shape: [], data_offsets: [32, 36] });
  assert.equal(bytes.length, 8 + headerLength + 36);
  const firstValue = Buffer.from(bytes.buffer, bytes.byteOffset + 8 + headerLength, 4).readFloatLE(0);
  assert.equal(firstValue, 1.5);
});

test('safetensors header padding keeps alignment', () => {
  // Metadata values of 0..15 characters shift the header length through every remainder mod 8.
  for (let extra = 0; extra < 16; extra++) {
    const content: SafetensorsContent = {
      tensors: new Map([['t', { shape: [1], data: Float32Array.from([1]) }]]),
      metadata: { note: 'x'.repeat(extra) },
    };

    const bytes = concatenate(encodeSafetensors(content));
    const headerLength = headerLengthOf(bytes);
    const headerText = Buffer.from(bytes.subarray(8, 8 + headerLength)).toString('utf8');

    assert.equal((8 + headerLength) % 8, 0, `data offset with a ${extra}-character note`);
    assert.match(headerText, /^\{.*\} {0,7}$/, `header is JSON followed by at most 7 spaces (${extra}-character note)`);
    assert.deepEqual(decodeSafetensors(bytes, 'padded').metadata, { note: 'x'.repeat(extra) });
  }
});

test('truncated safetensors names the file', async () => {
  await withTempDir(async (dir) => {
    const complete = concatenate(encodeSafetensors(sampleContent()));
    const headerLength = headerLengthOf(complete);
    const cuts = {
      'inside the length prefix': 5,
      'inside the header': 8 + Math.floor(headerLength / 2),
      'inside the data': complete.length - 3,
    };

    for (const [where, length] of Object.entries(cuts)) {
      const file = path.join(dir, `cut ${where}.safetensors`);
      await writeFile(file, complete.subarray(0, length));

      await assert.rejects(readSafetensors(file), SafetensorsFormatError, `cut ${where}`);
      await assert.rejects(readSafetensors(file), (error: Error) => error.message.includes(file), `message names the file when cut ${where}`);
    }
  });
});

test('safetensors with wrong data size rejected', async () => {
  await withTempDir(async (dir) => {
    const file = path.join(dir, 'mismatch.safetensors');
    const headerText = JSON.stringify({ odd: { dtype: 'F32', shape: [2], data_offsets: [0, 6] } }).padEnd(64, ' ');
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(headerText.length));
    await writeFile(file, Buffer.concat([prefix, Buffer.from(headerText), Buffer.alloc(8)]));

    // Six bytes are neither two float32 values nor a whole number of them.
    await assert.rejects(readSafetensors(file), SafetensorsFormatError);
  });
});

test('safetensors shape must match data', async () => {
  await withTempDir(async (dir) => {
    const file = path.join(dir, 'shape.safetensors');
    const headerText = JSON.stringify({ t: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 8] } }).padEnd(64, ' ');
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(headerText.length));
    await writeFile(file, Buffer.concat([prefix, Buffer.from(headerText), Buffer.alloc(8)]));

    await assert.rejects(readSafetensors(file), SafetensorsFormatError);
  });
});

test('written safetensors file is complete', async () => {
  await withTempDir(async (dir) => {
    const file = path.join(dir, 'weights.safetensors');
    const content = sampleContent();

    await writeSafetensors(file, content);

    assert.ok(Buffer.from(await readFile(file)).equals(concatenate(encodeSafetensors(content))), 'file bytes equal the encoded chunks');
  });
});

test('encoding rejects shape and data mismatch', () => {
  const content: SafetensorsContent = { tensors: new Map([['t', { shape: [2, 2], data: new Float32Array(3) }]]), metadata: {} };

  assert.throws(() => encodeSafetensors(content), RangeError);
});
