import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { imagenetNormalization, inceptionNormalization, normalizeInto } from '../../src/image/normalize.js';
import type { RgbImage } from '../../src/image/decode.js';

function assertClose(actual: number, expected: number, label: string): void {
  assert.ok(Math.abs(actual - expected) < 1e-5, `${label}: expected ${expected}, got ${actual}`);
}

const onePixel: RgbImage = { width: 1, height: 1, data: new Uint8Array([255, 0, 128]) };

describe('normalizeInto', () => {
  test('mean and std 0.5 map to -1..1', () => {
    const out = new Float32Array(3);
    normalizeInto(onePixel, inceptionNormalization, out, 0);
    assertClose(out[0], 1, 'red');
    assertClose(out[1], -1, 'green');
    // (128 / 255 - 0.5) / 0.5 = 1 / 255
    assertClose(out[2], 0.00392157, 'blue');
  });

  test('ImageNet values for one pixel', () => {
    const out = new Float32Array(3);
    normalizeInto(onePixel, imagenetNormalization, out, 0);
    // (1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (0.50196078 - 0.406) / 0.225
    assertClose(out[0], 2.24890830, 'red');
    assertClose(out[1], -2.03571429, 'green');
    assertClose(out[2], 0.42649237, 'blue');
  });

  test('writes CHW order at offset', () => {
    // 3 wide, 2 high; pixel (x, y) has red 10 * (y * 3 + x), green red + 1, blue red + 2.
    const width = 3;
    const height = 2;
    const data = new Uint8Array(width * height * 3);
    for (let pixel = 0; pixel < width * height; pixel++) {
      data.set([10 * pixel, 10 * pixel + 1, 10 * pixel + 2], pixel * 3);
    }
    const offset = 5;
    const out = new Float32Array(offset + 18 + 2).fill(-99);
    const identity = { mean: [0, 0, 0] as [number, number, number], std: [1 / 255, 1 / 255, 1 / 255] as [number, number, number] };
    normalizeInto({ width, height, data }, identity, out, offset);

    // With mean 0 and std 1/255 each output equals the pixel value.
    assertClose(out[offset + 0], 0, 'red of (0, 0)');
    assertClose(out[offset + 2], 20, 'red of (2, 0)');
    assertClose(out[offset + 4], 40, 'red of (1, 1)');
    assertClose(out[offset + 6 + 0], 1, 'green of (0, 0)');
    assertClose(out[offset + 6 + 5], 51, 'green of (2, 1)');
    assertClose(out[offset + 12 + 3], 32, 'blue of (0, 1)');
    assertClose(out[offset + 12 + 5], 52, 'blue of (2, 1)');
    assert.deepEqual(Array.from(out.subarray(0, offset)), [-99, -99, -99, -99, -99]);
    assert.deepEqual(Array.from(out.subarray(offset + 18)), [-99, -99]);
  });

  test('every byte value matches the formula', () => {
    const data = new Uint8Array(256 * 3);
    for (let value = 0; value < 256; value++) {
      data.set([value, value, value], value * 3);
    }
    const out = new Float32Array(256 * 3);
    normalizeInto({ width: 256, height: 1, data }, imagenetNormalization, out, 0);
    for (let channel = 0; channel < 3; channel++) {
      for (let value = 0; value < 256; value++) {
        const expected = (value / 255 - imagenetNormalization.mean[channel]) / imagenetNormalization.std[channel];
        assertClose(out[channel * 256 + value], expected, `channel ${channel} value ${value}`);
      }
    }
  });

  test('rejects output that is too short', () => {
    assert.throws(() => normalizeInto(onePixel, imagenetNormalization, new Float32Array(3), 1), RangeError);
    assert.throws(() => normalizeInto(onePixel, imagenetNormalization, new Float32Array(2), 0), RangeError);
  });

  test('rejects zero standard deviation', () => {
    const zeroStd = { mean: [0, 0, 0] as [number, number, number], std: [1, 0, 1] as [number, number, number] };
    assert.throws(() => normalizeInto(onePixel, zeroStd, new Float32Array(3), 0), RangeError);
  });
});
