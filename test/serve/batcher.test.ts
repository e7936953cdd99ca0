// Micro-batching and admission of InferenceBatcher, running the real trained model.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RgbImage } from '../../src/image/decode.js';
import { BatcherClosedError, InferenceBatcher, QueueFullError, type BatcherOptions } from '../../src/serve/batcher.js';
import { Predictor } from '../../src/train/predictor.js';
import { testPhotos, trainedModel } from './fixtures.js';

describe('InferenceBatcher', () => {
  let predictor: Predictor;
  let views: RgbImage[];
  let single: Float32Array[];

  before(async () => {
    predictor = await Predictor.load(await trainedModel(), { threads: 2 });
    views = await Promise.all(testPhotos.map((photo) => predictor.decodeView(photo)));
    const labels = predictor.metadata.labels.length;
    single = [];
    for (const view of views) {
      single.push((await predictor.runViews([view])).probabilities.slice(0, labels));
    }
  });

  after(async () => {
    await predictor?.release();
  });

  function makeBatcher(options: Partial<BatcherOptions>): InferenceBatcher {
    return new InferenceBatcher((batch) => predictor.runViews(batch), predictor.metadata.labels.length, {
      maxBatchSize: 16,
      maxWaitMs: 50,
      maxPending: 64,
      ...options,
    });
  }

  test('concurrent images share one call', async () => {
    const batcher = makeBatcher({});
    const order = [0, 1, 2, 1, 0];
    // Five admitted images: the batch waits until the last one is queued.
    batcher.admit(order.length);
    const outputs = await Promise.all(order.map((index) => batcher.predict(views[index])));
    assert.equal(batcher.stats.modelCalls, 1);
    assert.equal(batcher.stats.largestBatch, order.length);
    outputs.forEach((output, position) => {
      const expected = single[order[position]];
      assert.equal(output.probabilities.length, expected.length);
      output.probabilities.forEach((probability, label) => {
        assert.ok(Math.abs(probability - expected[label]) <= 1e-6, `image ${position} label ${label}: ${probability} vs ${expected[label]}`);
      });
    });
  });

  test('batch size caps each call', async () => {
    const batcher = makeBatcher({ maxBatchSize: 2 });
    batcher.admit(5);
    await Promise.all([0, 1, 2, 0, 1].map((index) => batcher.predict(views[index])));
    assert.equal(batcher.stats.modelCalls, 3);
    assert.equal(batcher.stats.largestBatch, 2);
    assert.equal(batcher.stats.images, 5);
  });

  test('zero wait runs at once', async () => {
    const batcher = makeBatcher({ maxWaitMs: 0, maxBatchSize: 8 });
    batcher.admit(2);
    await Promise.all([batcher.predict(views[0]), batcher.predict(views[1])]);
    assert.equal(batcher.stats.modelCalls, 2, 'each image starts its own call');
  });

  test('waits for images being decoded', async () => {
    const batcher = makeBatcher({ maxWaitMs: 60_000 });
    const admission = batcher.admit(2);
    const first = batcher.predict(views[0]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(batcher.stats.modelCalls, 0, 'the first image waits for the second admitted one');
    const second = batcher.predict(views[1]);
    await Promise.all([first, second]);
    assert.equal(batcher.stats.modelCalls, 1);
    assert.equal(batcher.stats.largestBatch, 2);
    admission.release();
  });

  test('lone image starts without waiting', async () => {
    const batcher = makeBatcher({ maxWaitMs: 60_000 });
    const admission = batcher.admit(1);
    const started = performance.now();
    await batcher.predict(views[0]);
    assert.ok(performance.now() - started < 10_000, 'no other image is coming, so the timer is not awaited');
    admission.release();
  });

  test('released slot ends the wait', async () => {
    const batcher = makeBatcher({ maxWaitMs: 60_000 });
    batcher.admit(1);
    const failed = batcher.admit(1);
    const queued = batcher.predict(views[0]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(batcher.stats.modelCalls, 0);
    // The other request failed before queueing its image.
    failed.release();
    await queued;
    assert.equal(batcher.stats.modelCalls, 1);
  });

  test('admission stops at capacity', () => {
    const batcher = makeBatcher({ maxPending: 3 });
    const first = batcher.admit(2);
    assert.equal(batcher.pending, 2);
    assert.throws(() => batcher.admit(2), (error: unknown) => error instanceof QueueFullError && error.capacity === 3 && error.pending === 2);
    const second = batcher.admit(1);
    assert.equal(batcher.pending, 3);
    first.release();
    first.release();
    assert.equal(batcher.pending, 1, 'a second release frees nothing');
    second.release();
    assert.equal(batcher.pending, 0);
  });

  test('close runs queued images', async () => {
    const batcher = makeBatcher({ maxWaitMs: 60_000 });
    batcher.admit(2);
    const queued = batcher.predict(views[0]);
    const started = performance.now();
    await batcher.close();
    const output = await queued;
    assert.ok(performance.now() - started < 10_000, 'close does not wait for the batch timer');
    assert.equal(output.probabilities.length, predictor.metadata.labels.length);
    await assert.rejects(batcher.predict(views[0]), BatcherClosedError);
    assert.throws(() => batcher.admit(1), BatcherClosedError);
  });

  test('model error rejects its batch', async () => {
    const batcher = makeBatcher({});
    // The data has fewer bytes than 224x224 RGB needs, so normalising the batch throws.
    const wrongSize: RgbImage = { width: 224, height: 224, data: new Uint8Array(300) };
    batcher.admit(2);
    const results = await Promise.allSettled([batcher.predict(views[0]), batcher.predict(wrongSize)]);
    assert.equal(results[0].status, 'rejected');
    assert.equal(results[1].status, 'rejected');
    const output = await batcher.predict(views[1]);
    assert.equal(output.probabilities.length, predictor.metadata.labels.length, 'later batches still run');
  });

  test('invalid options are rejected', () => {
    assert.throws(() => makeBatcher({ maxBatchSize: 0 }), /maxBatchSize/);
    assert.throws(() => makeBatcher({ maxWaitMs: -1 }), /maxWaitMs/);
    assert.throws(() => makeBatcher({ maxPending: 1.5 }), /maxPending/);
  });
});
