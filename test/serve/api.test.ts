// HTTP API of the server on loopback: every endpoint, every error status, limits and request logs.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import type { RunningServer } from '../../src/serve/server.js';
import { Predictor } from '../../src/train/predictor.js';
import type { ModelMetadata } from '../../src/train/runFolder.js';
import { formWith, memoryLogger, slowUpload, startTestServer, testPhotos, trainedModel } from './fixtures.js';

/** Largest difference allowed between server and Predictor probabilities of the same image. */
const probabilityTolerance = 1e-6;

interface ErrorResponse {
  statusCode: number;
  error: string;
  code: string;
  message: string;
}

interface PredictResponse {
  labels: string[];
  probabilities: Record<string, number>;
}

/** Reads a file as a Uint8Array that fetch and Blob accept as a body. */
async function readBytes(file: string): Promise<Uint8Array<ArrayBuffer>> {
  return Uint8Array.from(await readFile(file));
}

async function noisePng(width: number, height: number): Promise<Uint8Array<ArrayBuffer>> {
  const data = Buffer.alloc(width * height * 3);
  let state = 7;
  for (let i = 0; i < data.length; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    data[i] = state >>> 24;
  }
  return Uint8Array.from(await sharp(data, { raw: { width, height, channels: 3 } }).png().toBuffer());
}

/** Builds a PNG that declares width x height pixels in a file of a few hundred bytes. */
async function headerOnlyPng(width: number, height: number): Promise<Uint8Array<ArrayBuffer>> {
  const small = await sharp({ create: { width: 1, height: 1, channels: 3, background: '#000' } }).png().toBuffer();
  const bomb = Buffer.from(small);
  // IHDR data starts at byte 16: width then height, big-endian. The CRC no longer matches, but the
  // header is read before the CRC matters and the limit check happens on the declared size.
  bomb.writeUInt32BE(width, 16);
  bomb.writeUInt32BE(height, 20);
  return Uint8Array.from(bomb);
}

/** Polls `condition` every 10 ms for up to 5 s. */
async function waitUntil(condition: () => boolean): Promise<void> {
  const deadline = performance.now() + 5000;
  while (!condition()) {
    assert.ok(performance.now() < deadline, 'condition not reached within 5 s');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function expectError(response: Response, status: number, code: string): Promise<ErrorResponse> {
  const body = (await response.json()) as ErrorResponse;
  assert.equal(response.status, status, `status of ${JSON.stringify(body)}`);
  assert.equal(body.statusCode, status);
  assert.equal(body.code, code);
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
  assert.ok(body.message.length > 20, `message "${body.message}" explains the problem`);
  return body;
}

describe('serve API', () => {
  let modelDir: string;
  let metadata: ModelMetadata;
  let server: RunningServer;
  let logs: ReturnType<typeof memoryLogger>;
  let expected: Map<string, Float32Array>;
  let requestsSent = 0;

  const send = (pathname: string, init?: RequestInit): Promise<Response> => {
    requestsSent++;
    return fetch(`${server.url}${pathname}`, init);
  };

  before(async () => {
    modelDir = await trainedModel();
    logs = memoryLogger();
    server = await startTestServer(modelDir, { logger: logs.logger, maxBatchSize: 16 });
    const predictor = await Predictor.load(modelDir, { threads: 2 });
    try {
      metadata = predictor.metadata;
      const { predictions, failures } = await predictor.predictFiles(testPhotos);
      assert.deepEqual(failures, []);
      expected = new Map(predictions.map((prediction) => [path.basename(prediction.file), prediction.probabilities]));
    } finally {
      await predictor.release();
    }
  });

  after(async () => {
    await server?.close();
  });

  function assertMatchesPredictor(file: string, body: PredictResponse): void {
    const probabilities = expected.get(file);
    assert.ok(probabilities, `Predictor result for ${file}`);
    metadata.labels.forEach((label, index) => {
      const difference = Math.abs(body.probabilities[label] - probabilities[index]);
      assert.ok(difference <= probabilityTolerance, `${file} ${label}: server ${body.probabilities[label]}, Predictor ${probabilities[index]}`);
    });
    const over = metadata.labels.filter((_, index) => probabilities[index] >= metadata.thresholds[index]);
    assert.deepEqual(body.labels, over);
  }

  test('predict multipart matches Predictor', async () => {
    for (const photo of testPhotos) {
      const response = await send('/predict', { method: 'POST', body: await formWith('image', [{ path: photo }]) });
      assert.equal(response.status, 200);
      assertMatchesPredictor(path.basename(photo), (await response.json()) as PredictResponse);
    }
  });

  test('predict raw body matches Predictor', async () => {
    const photo = testPhotos[1];
    const response = await send('/predict', { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: await readBytes(photo) });
    assert.equal(response.status, 200);
    assert.ok(response.headers.get('x-request-id'));
    assertMatchesPredictor(path.basename(photo), (await response.json()) as PredictResponse);
  });

  test('concurrent predicts share model calls', async () => {
    const callsBefore = server.batcher.stats.modelCalls;
    const bodies = await Promise.all(
      Array.from({ length: 12 }, async (_, index) => {
        const photo = testPhotos[index % testPhotos.length];
        const response = await send('/predict', { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: await readBytes(photo) });
        assert.equal(response.status, 200);
        return [path.basename(photo), (await response.json()) as PredictResponse] as const;
      }),
    );
    for (const [file, body] of bodies) {
      assertMatchesPredictor(file, body);
    }
    const calls = server.batcher.stats.modelCalls - callsBefore;
    assert.ok(calls < 12, `12 concurrent images took ${calls} model calls`);
  });

  test('batch returns one record per file', async () => {
    const corrupt = (await readBytes(testPhotos[0])).slice(0, 3000);
    const form = await formWith('images', [{ path: testPhotos[0] }, { path: testPhotos[2] }]);
    form.append('images', new Blob([corrupt], { type: 'image/jpeg' }), 'cut.jpg');
    form.append('images', new Blob(['plain text'], { type: 'text/plain' }), 'notes.txt');
    form.append('images', new Blob([await readBytes(testPhotos[1])], { type: 'image/jpeg' }), 'last.jpg');

    const response = await send('/predict/batch', { method: 'POST', body: form });
    assert.equal(response.status, 200);
    const body = (await response.json()) as { thresholds: Record<string, number>; results: ({ file: string } & Partial<PredictResponse> & { error?: ErrorResponse })[] };
    assert.deepEqual(body.results.map((record) => record.file), ['10.jpg', '1007.jpg', 'cut.jpg', 'notes.txt', 'last.jpg']);
    assertMatchesPredictor('10.jpg', body.results[0] as PredictResponse);
    assertMatchesPredictor('1007.jpg', body.results[1] as PredictResponse);
    assert.equal(body.results[2].error?.statusCode, 400);
    assert.equal(body.results[2].error?.code, 'invalid-image');
    assert.match(body.results[2].error?.message ?? '', /cut\.jpg/);
    assert.equal(body.results[3].error?.statusCode, 415);
    assert.equal(body.results[3].error?.code, 'unsupported-media-type');
    assertMatchesPredictor('1003.jpg', body.results[4] as PredictResponse);
    assert.deepEqual(body.thresholds, Object.fromEntries(metadata.labels.map((label, index) => [label, metadata.thresholds[index]])));
  });

  test('batch without files is 400', async () => {
    const form = new FormData();
    form.append('note', 'no files here');
    await expectError(await send('/predict/batch', { method: 'POST', body: form }), 400, 'missing-image');
  });

  test('batch of raw image is 415', async () => {
    const response = await send('/predict/batch', { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: await readBytes(testPhotos[0]) });
    await expectError(response, 415, 'unsupported-media-type');
  });

  test('labels returns labels and thresholds', async () => {
    const response = await send('/labels');
    assert.equal(response.status, 200);
    const body = (await response.json()) as { labels: string[]; thresholds: Record<string, number> };
    assert.deepEqual(body.labels, metadata.labels);
    assert.deepEqual(Object.values(body.thresholds), metadata.thresholds);
  });

  test('health reports status and queue', async () => {
    const response = await send('/health');
    assert.equal(response.status, 200);
    const body = (await response.json()) as { status: string; pendingImages: number; maxPendingImages: number; labels: number };
    assert.equal(body.status, 'ok');
    assert.equal(body.pendingImages, 0);
    assert.equal(body.maxPendingImages, 64);
    assert.equal(body.labels, metadata.labels.length);
  });

  test('unknown route is 404', async () => {
    const body = await expectError(await send('/predictions'), 404, 'not-found');
    assert.match(body.message, /\/predictions/);
    await expectError(await send('/ort/package.json'), 404, 'not-found');
  });

  test('wrong method on an endpoint is 405', async () => {
    const getPredict = await send('/predict');
    assert.equal(getPredict.headers.get('allow'), 'POST');
    const body = await expectError(getPredict, 405, 'method-not-allowed');
    assert.match(body.message, /GET \/predict is not supported\. Use POST \/predict\./);

    const postLabels = await send('/labels', { method: 'POST', body: 'x' });
    assert.equal(postLabels.headers.get('allow'), 'GET, HEAD');
    await expectError(postLabels, 405, 'method-not-allowed');
  });

  test('wrong content type is 415', async () => {
    await expectError(await send('/predict', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello' }), 415, 'unsupported-media-type');
    const urlEncoded = await expectError(await send('/predict', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=b' }), 415, 'unsupported-media-type');
    assert.match(urlEncoded.message, /content type "application\/x-www-form-urlencoded" is not supported/);
    await expectError(await send('/predict', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"image": "x"}' }), 415, 'unsupported-media-type');
    await expectError(await send('/predict', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: await readBytes(testPhotos[0]) }), 415, 'unsupported-media-type');
    await expectError(await send('/predict', { method: 'POST', headers: { 'content-type': 'image/svg+xml' }, body: '<svg xmlns="http://www.w3.org/2000/svg"/>' }), 415, 'unsupported-media-type');
    const form = new FormData();
    form.append('image', new Blob(['a,b\n1,2\n'], { type: 'text/csv' }), 'table.csv');
    await expectError(await send('/predict', { method: 'POST', body: form }), 415, 'unsupported-media-type');
  });

  test('corrupt image is 400', async () => {
    const truncated = (await readBytes(testPhotos[0])).slice(0, 2000);
    const cut = await expectError(await send('/predict', { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: truncated }), 400, 'invalid-image');
    assert.match(cut.message, /truncated or corrupt/);
    const random = Uint8Array.from({ length: 4096 }, (_, index) => (index * 7919) % 251);
    await expectError(await send('/predict', { method: 'POST', headers: { 'content-type': 'image/png' }, body: random }), 400, 'invalid-image');
  });

  test('missing image is 400', async () => {
    await expectError(await send('/predict', { method: 'POST' }), 400, 'missing-image');
    await expectError(await send('/predict', { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: new Uint8Array(0) }), 400, 'missing-image');
    const form = await formWith('picture', [{ path: testPhotos[0] }]);
    const wrongField = await expectError(await send('/predict', { method: 'POST', body: form }), 400, 'missing-image');
    assert.match(wrongField.message, /"image"/);
  });

  test('declared pixels over limit is 413', async () => {
    const started = performance.now();
    const response = await send('/predict', { method: 'POST', headers: { 'content-type': 'image/png' }, body: await headerOnlyPng(20_000, 20_000) });
    const body = await expectError(response, 413, 'too-many-pixels');
    assert.match(body.message, /20000x20000 = 400000000 pixels/);
    assert.ok(performance.now() - started < 2000, 'rejected from the header, without decoding 400 megapixels');
  });

  test('one log line per request', async () => {
    // Let the server finish writing the log lines of the requests above.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const completed = logs.lines().filter((line) => line.msg === 'request completed');
    assert.equal(completed.length, requestsSent);
    const ids = new Set(completed.map((line) => line.reqId));
    assert.equal(ids.size, completed.length, 'every request has its own id');
    for (const line of completed) {
      assert.equal(typeof line.statusCode, 'number');
      assert.equal(typeof line.responseTimeMs, 'number');
      assert.equal(typeof line.url, 'string');
    }
    const rejected = completed.find((line) => line.statusCode === 415 && line.url === '/predict');
    assert.equal((rejected?.error as { code?: string } | undefined)?.code, 'unsupported-media-type', 'the log line names the error');
    const batch = completed.find((line) => line.url === '/predict/batch' && Array.isArray(line.failedFiles));
    assert.deepEqual(batch?.failedFiles, [{ file: 'cut.jpg', code: 'invalid-image' }, { file: 'notes.txt', code: 'unsupported-media-type' }]);
  });

  test('page and its files are served', async () => {
    const page = await send('/');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(page.headers.get('content-security-policy') ?? '', /connect-src 'self'/);
    const html = await page.text();
    assert.match(html, /<script type="module" src="\/static\/app.js">/);
    assert.doesNotMatch(html, /https?:\/\//, 'the page references no other origin');

    for (const script of ['/static/app.js', '/static/evalView.js', '/ort/ort.wasm.min.mjs', '/ort/ort-wasm-simd-threaded.mjs']) {
      const response = await send(script);
      assert.equal(response.status, 200, script);
      assert.match(response.headers.get('content-type') ?? '', /^text\/javascript/, script);
    }
    const wasm = await send('/ort/ort-wasm-simd-threaded.wasm');
    assert.equal(wasm.headers.get('content-type'), 'application/wasm');
    assert.deepEqual(Buffer.from(await wasm.arrayBuffer()).subarray(0, 4), Buffer.from([0, 0x61, 0x73, 0x6d]));
    const modelJson = await send('/model/model.json');
    assert.deepEqual(await modelJson.json(), JSON.parse(await readFile(path.join(modelDir, 'model.json'), 'utf8')));
    const modelOnnx = await send('/model/model.onnx');
    assert.deepEqual(Buffer.from(await modelOnnx.arrayBuffer()), await readFile(path.join(modelDir, 'model.onnx')));
  });
});

describe('serve limits', () => {
  let modelDir: string;

  before(async () => {
    modelDir = await trainedModel();
  });

  test('body over limit is 413', async () => {
    const server = await startTestServer(modelDir, { maxBodyBytes: 50_000 });
    try {
      const large = await noisePng(200, 200);
      assert.ok(large.length > 50_000);
      const raw = await expectError(await fetch(`${server.url}/predict`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: large }), 413, 'body-too-large');
      assert.match(raw.message, /limit of 0\.05 MiB \(50000 bytes, set by --max-body-mb\)/);
      const form = new FormData();
      form.append('image', new Blob([large], { type: 'image/png' }), 'noise.png');
      await expectError(await fetch(`${server.url}/predict`, { method: 'POST', body: form }), 413, 'body-too-large');

      const batch = new FormData();
      batch.append('images', new Blob([large], { type: 'image/png' }), 'noise.png');
      batch.append('images', new Blob([await readBytes(testPhotos[0])], { type: 'image/jpeg' }), 'small.jpg');
      const response = await fetch(`${server.url}/predict/batch`, { method: 'POST', body: batch });
      assert.equal(response.status, 200);
      const body = (await response.json()) as { results: { file: string; error?: ErrorResponse; labels?: string[] }[] };
      assert.equal(body.results[0].error?.statusCode, 413);
      assert.equal(body.results[0].error?.code, 'body-too-large');
      assert.ok(Array.isArray(body.results[1].labels), 'the small file of the batch is still tagged');
    } finally {
      await server.close();
    }
  });

  test('batch over file limit is 413', async () => {
    const server = await startTestServer(modelDir, { maxFiles: 2 });
    try {
      const form = await formWith('images', testPhotos.map((photo) => ({ path: photo })));
      await expectError(await fetch(`${server.url}/predict/batch`, { method: 'POST', body: form }), 413, 'too-many-files');
    } finally {
      await server.close();
    }
  });

  test('full queue is 503 with Retry-After', async () => {
    const server = await startTestServer(modelDir, { maxPending: 1 });
    try {
      const photo = await readBytes(testPhotos[0]);
      // The first request keeps the only image slot while its body is still arriving.
      const first = slowUpload(`${server.url}/predict`, photo, 'image/jpeg');
      await waitUntil(() => server.batcher.pending === 1);
      const second = await fetch(`${server.url}/predict`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: photo });
      assert.equal(second.headers.get('retry-after'), '1');
      await expectError(second, 503, 'queue-full');
      first.finish();
      assert.equal((await first.response).status, 200);
      await waitUntil(() => server.batcher.pending === 0);
      const third = await fetch(`${server.url}/predict`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: photo });
      assert.equal(third.status, 200, 'the slot is free again');
    } finally {
      await server.close();
    }
  });

  test('slow request times out with 503', async () => {
    const server = await startTestServer(modelDir, { timeoutMs: 500 });
    try {
      const form = await formWith('image', [{ path: testPhotos[0] }]);
      const encoded = new Response(form);
      const upload = slowUpload(`${server.url}/predict`, new Uint8Array(await encoded.arrayBuffer()), encoded.headers.get('content-type') ?? '');
      const response = await upload.response;
      assert.equal(response.headers.get('retry-after'), '1');
      await expectError(response, 503, 'timeout');
      // The server stops reading the unfinished upload, so its image slot is freed.
      await waitUntil(() => server.batcher.pending === 0);
      upload.finish();
      const later = await fetch(`${server.url}/predict`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: await readBytes(testPhotos[0]) });
      assert.equal(later.status, 200, 'a fast request is still answered');
    } finally {
      await server.close();
    }
  });

  test('slow raw body times out with 503', async () => {
    const server = await startTestServer(modelDir, { timeoutMs: 500 });
    try {
      const upload = slowUpload(`${server.url}/predict`, await readBytes(testPhotos[0]), 'image/jpeg');
      const response = await upload.response;
      assert.equal(response.headers.get('retry-after'), '1');
      const body = await expectError(response, 503, 'timeout');
      assert.match(body.message, /did not arrive within 500 ms/);
      await waitUntil(() => server.batcher.pending === 0);
      upload.finish();
    } finally {
      await server.close();
    }
  });

  test('close finishes requests in flight', async () => {
    const server = await startTestServer(modelDir);
    try {
      const upload = slowUpload(`${server.url}/predict`, await readBytes(testPhotos[0]), 'image/jpeg');
      await waitUntil(() => server.batcher.pending === 1);
      const closed = server.close();
      await new Promise((resolve) => setTimeout(resolve, 200));
      upload.finish();
      const response = await upload.response;
      assert.equal(response.status, 200);
      assert.ok(Array.isArray(((await response.json()) as PredictResponse).labels));
      await closed;
      await assert.rejects(fetch(`${server.url}/health`), 'no new connections after close');
    } finally {
      await server.close();
    }
  });
});
