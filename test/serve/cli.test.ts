// The serve and export commands run as child processes, as users run them.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import type { ChannelNormalization, PixelImage } from '../../src/serve/web/evalView.js';
import { Predictor } from '../../src/train/predictor.js';
import type { ModelMetadata } from '../../src/train/runFolder.js';
import { cliPath, slowUpload, testPhotos, trainedModel } from './fixtures.js';

const execFileAsync = promisify(execFile);

/** Runs the CLI to completion and returns its exit code and output. */
async function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [cliPath, ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe('serve command', () => {
  let modelDir: string;

  before(async () => {
    modelDir = await trainedModel();
  });

  test('SIGTERM finishes requests then exits 0', async () => {
    const child = spawn(process.execPath, [cliPath, '--log-format', 'json', 'serve', '--model', modelDir, '--port', '0', '--threads', '2'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const logLines: Record<string, unknown>[] = [];
    const listening = new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stderr }).on('line', (line) => {
        if (!line.startsWith('{')) {
          return;
        }
        const record = JSON.parse(line) as Record<string, unknown>;
        logLines.push(record);
        if (typeof record.url === 'string' && String(record.msg).startsWith('serving')) {
          resolve(record.url);
        }
      });
      child.on('exit', (code) => reject(new Error(`serve exited with code ${code} before listening`)));
    });
    try {
      const url = await listening;
      // The request is in flight when SIGTERM arrives: half of its body has been sent.
      const upload = slowUpload(`${url}/predict`, Uint8Array.from(await readFile(testPhotos[0])), 'image/jpeg');
      await new Promise((resolve) => setTimeout(resolve, 300));
      child.kill('SIGTERM');
      await new Promise((resolve) => setTimeout(resolve, 300));
      upload.finish();

      const response = await upload.response;
      assert.equal(response.status, 200, 'the request in flight is answered');
      assert.ok(Array.isArray(((await response.json()) as { labels: unknown }).labels));
      assert.equal(await exited, 0);
      const messages = logLines.map((line) => String(line.msg));
      assert.ok(messages.some((message) => message.startsWith('SIGTERM received')), messages.join(' | '));
      assert.ok(messages.includes('server stopped'));
      const completed = logLines.find((line) => line.msg === 'request completed');
      assert.equal(completed?.statusCode, 200);
      assert.equal(typeof completed?.reqId, 'string');
      await assert.rejects(fetch(`${url}/health`), 'the port is closed after exit');
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('missing model folder fails with a message', async () => {
    const missing = path.join(tmpdir(), 'multitag-no-such-model');
    const result = await runCli(['serve', '--model', missing, '--port', '0']);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /multitag-no-such-model was not found/);
  });
});

describe('export command', () => {
  let modelDir: string;
  let work: string;

  before(async () => {
    modelDir = await trainedModel();
    work = await mkdtemp(path.join(tmpdir(), 'multitag-export-test-'));
  });

  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  test('export writes model, metadata and readme', async () => {
    const out = path.join(work, 'export');
    const result = await runCli(['export', '--model', modelDir, '--out', out]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual((await readdir(out)).sort(), ['README.md', 'model.json', 'model.onnx', 'preprocess.js']);
    assert.deepEqual(await readFile(path.join(out, 'model.onnx')), await readFile(path.join(modelDir, 'model.onnx')));
    const metadata = JSON.parse(await readFile(path.join(out, 'model.json'), 'utf8')) as ModelMetadata;
    assert.deepEqual(metadata, JSON.parse(await readFile(path.join(modelDir, 'model.json'), 'utf8')));
    const readme = await readFile(path.join(out, 'README.md'), 'utf8');
    for (const label of metadata.labels) {
      assert.match(readme, new RegExp(`\\| ${label} \\| `));
    }
    assert.match(readme, /onnxruntime-node/);
    assert.match(readme, /onnxruntime-web/);
    assert.match(readme, /short side is 230 pixels/);
    assert.doesNotMatch(await readFile(path.join(out, 'preprocess.js'), 'utf8'), /sourceMappingURL/);
  });

  test('exported model follows the readme', async () => {
    const out = path.join(work, 'recipe');
    assert.equal((await runCli(['export', '--model', modelDir, '--out', out])).code, 0);
    // The Node recipe of the README: sharp decode, preprocess.js, onnxruntime-node.
    const preprocess = (await import(pathToFileURL(path.join(out, 'preprocess.js')).href)) as {
      evalView: (image: PixelImage, inputSize: number) => Uint8Array;
      normalizeView: (view: Uint8Array, size: number, normalization: ChannelNormalization) => Float32Array;
    };
    const metadata = JSON.parse(await readFile(path.join(out, 'model.json'), 'utf8')) as ModelMetadata;
    const session = await ort.InferenceSession.create(path.join(out, 'model.onnx'));
    const predictor = await Predictor.load(modelDir, { threads: 2 });
    try {
      const { predictions } = await predictor.predictFiles(testPhotos);
      for (const [index, photo] of testPhotos.entries()) {
        const { data, info } = await sharp(photo, { autoOrient: true }).flatten({ background: '#000' }).toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
        const size = metadata.inputSize;
        const view = preprocess.evalView({ width: info.width, height: info.height, channels: 3, data }, size);
        const input = preprocess.normalizeView(view, size, metadata.normalization);
        const outputs = await session.run({ [metadata.inputName]: new ort.Tensor('float32', input, [1, 3, size, size]) });
        const probabilities = outputs[metadata.outputs.probabilities].data as Float32Array;
        probabilities.forEach((probability, label) => {
          const expected = predictions[index].probabilities[label];
          assert.ok(Math.abs(probability - expected) <= 1e-6, `${photo} label ${label}: ${probability} vs ${expected}`);
        });
      }
    } finally {
      await predictor.release();
      await session.release();
    }
  });

  test('export replaces an earlier export', async () => {
    const out = path.join(work, 'again');
    assert.equal((await runCli(['export', '--model', modelDir, '--out', out])).code, 0);
    await writeFile(path.join(out, 'model.json'), '{"stale": true}');
    assert.equal((await runCli(['export', '--model', modelDir, '--out', out])).code, 0);
    assert.deepEqual(JSON.parse(await readFile(path.join(out, 'model.json'), 'utf8')), JSON.parse(await readFile(path.join(modelDir, 'model.json'), 'utf8')));
    assert.deepEqual((await readdir(out)).sort(), ['README.md', 'model.json', 'model.onnx', 'preprocess.js'], 'no temporary files are left');
  });

  test('export keeps a foreign folder intact', async () => {
    const project = path.join(work, 'project');
    await mkdir(project, { recursive: true });
    await writeFile(path.join(project, 'README.md'), 'my project\n');
    const result = await runCli(['export', '--model', modelDir, '--out', project]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /not from an earlier export \(README\.md\)/);
    assert.equal(await readFile(path.join(project, 'README.md'), 'utf8'), 'my project\n');
    assert.deepEqual(await readdir(project), ['README.md']);
  });

  test('export into the model folder fails', async () => {
    const result = await runCli(['export', '--model', modelDir, '--out', modelDir]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /is the model folder itself/);
  });

  test('export without a model fails', async () => {
    const empty = path.join(work, 'empty');
    await rm(empty, { recursive: true, force: true });
    await mkdir(empty);
    const result = await runCli(['export', '--model', empty, '--out', path.join(work, 'unused')]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /holds no model\.json/);
  });
});
