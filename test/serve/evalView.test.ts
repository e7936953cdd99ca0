// The page's JavaScript evaluation view against the server's sharp pipeline (decodeEvalViewBuffer).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import sharp from 'sharp';
import { decodeEvalView, decodeEvalViewBuffer } from '../../src/image/decode.js';
import { imagenetNormalization, normalizeInto } from '../../src/image/normalize.js';
import { evalView, evalViewGeometry, normalizeView } from '../../src/serve/web/evalView.js';
import { testPhotos } from './fixtures.js';

const inputSize = 224;

function noise(width: number, height: number, seed: number): Uint8Array {
  const data = new Uint8Array(width * height * 3);
  let state = seed;
  for (let i = 0; i < data.length; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    data[i] = state >>> 24;
  }
  return data;
}

/** Compares evalView with the server's view of the same pixels, stored losslessly as PNG. */
async function compareWithSharp(width: number, height: number): Promise<{ differing: number; largest: number; values: number }> {
  const pixels = noise(width, height, width * 31 + height);
  const png = await sharp(pixels, { raw: { width, height, channels: 3 } }).png({ compressionLevel: 1 }).toBuffer();
  const server = await decodeEvalViewBuffer(png, `${width}x${height}`, inputSize);
  const browser = evalView({ width, height, channels: 3, data: pixels }, inputSize);
  assert.equal(browser.length, server.data.length);
  let differing = 0;
  let largest = 0;
  for (let i = 0; i < browser.length; i++) {
    const difference = Math.abs(browser[i] - server.data[i]);
    if (difference > 0) {
      differing++;
      largest = Math.max(largest, difference);
    }
  }
  return { differing, largest, values: browser.length };
}

describe('evalView', () => {
  test('downsizing matches sharp exactly', async () => {
    // Factors from just above 1 to 35, both orientations, with and without the integer box shrink.
    const sizes = [[231, 232], [300, 200], [461, 920], [690, 460], [1023, 767], [1381, 3001], [4000, 3000], [6000, 400], [400, 6000], [8000, 300]];
    for (const [width, height] of sizes) {
      const result = await compareWithSharp(width, height);
      assert.equal(result.differing, 0, `${width}x${height}: ${result.differing} values differ, by up to ${result.largest}`);
    }
  });

  test('unchanged size matches sharp exactly', async () => {
    const result = await compareWithSharp(230, 400);
    assert.equal(result.differing, 0);
  });

  test('upsizing is within one level of sharp', async () => {
    // NOTE: when an input position falls exactly on a pixel or half-pixel boundary, libvips' floating
    // point can land just below it, so a few values differ by one level.
    const sizes = [[224, 224], [100, 80], [50, 50], [7, 5], [33, 41], [150, 151], [220, 500], [12, 9], [215, 481], [16, 829], [404, 6]];
    let differing = 0;
    let values = 0;
    for (const [width, height] of sizes) {
      const result = await compareWithSharp(width, height);
      assert.ok(result.largest <= 1, `${width}x${height}: values differ by up to ${result.largest}`);
      differing += result.differing;
      values += result.values;
    }
    assert.ok(differing / values < 1e-3, `${differing} of ${values} values differ`);
    assert.equal((await compareWithSharp(224, 224)).differing, 0, 'the 224x224 case of the shared data set is exact');
  });

  test('shared photos match decodeEvalView', async () => {
    for (const photo of testPhotos) {
      const { data, info } = await sharp(photo, { autoOrient: true }).flatten({ background: '#000' }).toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
      const browser = evalView({ width: info.width, height: info.height, channels: 3, data }, inputSize);
      const server = await decodeEvalView(photo, inputSize);
      assert.deepEqual(browser, server.data, photo);
    }
  });

  test('RGBA input ignores alpha', () => {
    const rgb = noise(300, 250, 5);
    const rgba = new Uint8ClampedArray(300 * 250 * 4);
    for (let pixel = 0; pixel < 300 * 250; pixel++) {
      rgba.set(rgb.subarray(pixel * 3, pixel * 3 + 3), pixel * 4);
      rgba[pixel * 4 + 3] = 255;
    }
    assert.deepEqual(evalView({ width: 300, height: 250, channels: 4, data: rgba }, inputSize), evalView({ width: 300, height: 250, channels: 3, data: rgb }, inputSize));
  });

  test('geometry crops the centre', () => {
    assert.deepEqual(evalViewGeometry(224, 224, 224), { resizedWidth: 230, resizedHeight: 230, left: 3, top: 3 });
    assert.deepEqual(evalViewGeometry(1000, 500, 224), { resizedWidth: 460, resizedHeight: 230, left: 118, top: 3 });
    assert.deepEqual(evalViewGeometry(500, 1001, 224), { resizedWidth: 230, resizedHeight: 460, left: 3, top: 118 });
  });

  test('invalid input is rejected', () => {
    assert.throws(() => evalViewGeometry(0, 10, 224), RangeError);
    assert.throws(() => evalView({ width: 10, height: 10, channels: 3, data: new Uint8Array(299) }, inputSize), /needs 300 bytes/);
    assert.throws(() => normalizeView(new Uint8Array(10), 224, imagenetNormalization), RangeError);
  });

  test('normalizeView equals normalizeInto', () => {
    const view = noise(inputSize, inputSize, 11);
    const expected = new Float32Array(3 * inputSize * inputSize);
    normalizeInto({ width: inputSize, height: inputSize, data: view }, imagenetNormalization, expected, 0);
    assert.deepEqual(normalizeView(view, inputSize, imagenetNormalization), expected);
  });
});
