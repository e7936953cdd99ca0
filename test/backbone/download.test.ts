import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { resolveBackbone } from '../../src/backbone/backbone.js';
import type { CatalogEntry } from '../../src/backbone/catalog.js';
import { cachedDownload, downloadFile, DownloadError, sha256OfFile } from '../../src/backbone/download.js';
import type { Progress } from '../../src/events.js';

// The compiled test runs from dist/test/backbone/, three levels below the repository root.
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const modelPath = path.resolve(repoRoot, '../shared/models/mobilenet_v2_1.0_224_imagenet.onnx');
const modelSha256 = 'f75fdc72b24cce563d0a2b8764e300b221c4402148cdc90f8ca179e2b65145b9';

/** What the test server does on the next request for /model.onnx. */
type ServerMode = 'serve' | 'cut';

let server: Server;
let baseUrl: string;
let modelBytes: Buffer;
let gzippedModel: Buffer;
let mode: ServerMode = 'serve';
let requestCount = 0;

before(async () => {
  modelBytes = await readFile(modelPath);
  gzippedModel = gzipSync(modelBytes);
  server = createServer((request, response) => {
    requestCount += 1;
    if (request.url === '/gzipped.onnx') {
      response.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Encoding': 'gzip', 'Content-Length': String(gzippedModel.length) });
      response.end(gzippedModel);
      return;
    }
    if (request.url !== '/model.onnx') {
      response.writeHead(404, { 'Content-Type': 'text/plain' });
      response.end('not found');
      return;
    }
    response.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(modelBytes.length) });
    if (mode === 'cut') {
      // Send half of the file, then drop the connection as a failing network would.
      response.write(modelBytes.subarray(0, modelBytes.length >> 1), () => response.socket?.destroy());
      return;
    }
    response.end(modelBytes);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

async function withCacheDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'multitag-download-test-'));
  mode = 'serve';
  try {
    await body(dir);
  } finally {
    mode = 'serve';
    await rm(dir, { recursive: true, force: true });
  }
}

test('download writes file and reports progress', async () => {
  await withCacheDir(async (dir) => {
    const updates: Progress[] = [];

    const target = await cachedDownload(`${baseUrl}/model.onnx`, 'model.onnx', { sha256: modelSha256, cacheDir: dir, onProgress: (progress) => updates.push(progress) });

    assert.equal(target, path.join(dir, 'model.onnx'));
    assert.equal(await sha256OfFile(target), modelSha256);
    assert.deepEqual(await readdir(dir), ['model.onnx']);
    assert.ok(updates.length > 0, 'progress was reported');
    const last = updates[updates.length - 1];
    assert.equal(last.total, modelBytes.length);
    assert.equal(last.done, last.total);
    assert.equal(last.unit, 'bytes');
    assert.ok(
      updates.every((update, index) => index === 0 || update.done >= updates[index - 1].done),
      'progress never goes backwards',
    );
  });
});

test('download with wrong hash is discarded', async () => {
  await withCacheDir(async (dir) => {
    const target = path.join(dir, 'model.onnx');
    const wrongHash = '0'.repeat(64);

    await assert.rejects(downloadFile(`${baseUrl}/model.onnx`, target, { sha256: wrongHash }), DownloadError);
    await assert.rejects(downloadFile(`${baseUrl}/model.onnx`, target, { sha256: wrongHash }), (error: Error) => error.message.includes(modelSha256));

    assert.deepEqual(await readdir(dir), [], 'neither the final file nor a temporary file is left');
  });
});

test('interrupted download leaves nothing behind', async () => {
  await withCacheDir(async (dir) => {
    const url = `${baseUrl}/model.onnx`;
    mode = 'cut';

    await assert.rejects(cachedDownload(url, 'model.onnx', { sha256: modelSha256, cacheDir: dir }), DownloadError);

    assert.deepEqual(await readdir(dir), []);

    mode = 'serve';
    const target = await cachedDownload(url, 'model.onnx', { sha256: modelSha256, cacheDir: dir });

    assert.equal(await sha256OfFile(target), modelSha256);
    assert.deepEqual(await readdir(dir), ['model.onnx']);
  });
});

test('gzip-encoded download is accepted', async () => {
  await withCacheDir(async (dir) => {
    // Content-Length counts the compressed bytes here, while the body arrives decompressed.
    const target = await cachedDownload(`${baseUrl}/gzipped.onnx`, 'model.onnx', { sha256: modelSha256, cacheDir: dir });

    assert.equal(await sha256OfFile(target), modelSha256);
    assert.deepEqual(await readdir(dir), ['model.onnx']);
  });
});

test('download HTTP 404 is rejected', async () => {
  await withCacheDir(async (dir) => {
    const url = `${baseUrl}/missing.onnx`;

    await assert.rejects(cachedDownload(url, 'missing.onnx', { sha256: modelSha256, cacheDir: dir }), DownloadError);
    await assert.rejects(cachedDownload(url, 'missing.onnx', { sha256: modelSha256, cacheDir: dir }), (error: Error) => error.message.includes('404') && error.message.includes(url));

    assert.deepEqual(await readdir(dir), []);
  });
});

test('cached file is not downloaded again', async () => {
  await withCacheDir(async (dir) => {
    const url = `${baseUrl}/model.onnx`;
    const before = requestCount;

    const first = await cachedDownload(url, 'model.onnx', { sha256: modelSha256, cacheDir: dir });
    const modified = (await stat(first)).mtimeMs;
    const second = await cachedDownload(url, 'model.onnx', { sha256: modelSha256, cacheDir: dir });

    assert.equal(requestCount - before, 1);
    assert.equal(second, first);
    assert.equal((await stat(second)).mtimeMs, modified);
  });
});

test('catalog entry resolves through download', async () => {
  await withCacheDir(async (dir) => {
    const entry: CatalogEntry = {
      name: 'local_mobilenet',
      description: 'the test model served on 127.0.0.1',
      url: `${baseUrl}/model.onnx`,
      sha256: modelSha256,
      bytes: modelBytes.length,
      preprocessing: { inputSize: 224, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
    };

    const backbone = await resolveBackbone({ source: 'local_mobilenet', catalog: [entry], cacheDir: dir });

    assert.equal(path.dirname(backbone.path), dir);
    assert.equal(await sha256OfFile(backbone.path), modelSha256);
    assert.equal(backbone.sha256, modelSha256);
    assert.equal(backbone.catalogName, 'local_mobilenet');
    assert.equal(backbone.inputName, 'input');
    assert.equal(backbone.featureName, 'features');
    assert.deepEqual(backbone.preprocessing, entry.preprocessing);
  });
});
