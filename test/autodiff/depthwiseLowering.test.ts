import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tapsToMatrix } from '../../src/autodiff/depthwiseLowering.js';
import type { WindowGeometry } from '../../src/autodiff/windowGeometry.js';

function geometry(overrides: Partial<WindowGeometry>): WindowGeometry {
  return { kernel: [3, 3], strides: [1, 1], dilations: [1, 1], padsBegin: [1, 1], padsEnd: [1, 1], inputSize: [2, 2], outputSize: [2, 2], ...overrides };
}

/** Lists the (tap, input pixel, output pixel) triples where the matrix has a 1. */
function ones(matrix: Float32Array, inputPixels: number, outputPixels: number): string[] {
  const found: string[] = [];
  matrix.forEach((value, index) => {
    if (value === 1) {
      const output = index % outputPixels;
      const input = Math.floor(index / outputPixels) % inputPixels;
      const tap = Math.floor(index / (outputPixels * inputPixels));
      found.push(`${tap}:${input}->${output}`);
    } else {
      assert.equal(value, 0);
    }
  });
  return found;
}

test('tapsToMatrix on a padded 2x2 map', () => {
  // The window of output pixel 0 (row 0, column 0) covers input pixels 0, 1, 2, 3 with taps 4, 5, 7, 8.
  // The window of output pixel 3 (row 1, column 1) covers them with taps 0, 1, 3, 4.
  const found = ones(tapsToMatrix(geometry({})), 4, 4);
  assert.equal(found.length, 16);
  for (const triple of ['4:0->0', '5:1->0', '7:2->0', '8:3->0', '0:0->3', '1:1->3', '3:2->3', '4:3->3', '3:0->1', '7:3->1']) {
    assert.ok(found.includes(triple), `missing ${triple}`);
  }
});

test('tapsToMatrix with stride and dilation', () => {
  // A 1x3 row, kernel 1x2 with dilation 2, stride 1, no padding: output 0 reads inputs 0 and 2.
  const rowGeometry = geometry({ kernel: [1, 2], dilations: [1, 2], padsBegin: [0, 0], padsEnd: [0, 0], inputSize: [1, 3], outputSize: [1, 1] });
  assert.deepEqual(ones(tapsToMatrix(rowGeometry), 3, 1), ['0:0->0', '1:2->0']);

  // A 1x5 row, kernel 1x3, stride 2, pad 1 on both sides: outputs 0, 1, 2 are centred on inputs 0, 2, 4.
  const strided = geometry({ kernel: [1, 3], strides: [1, 2], padsBegin: [0, 1], padsEnd: [0, 1], inputSize: [1, 5], outputSize: [1, 3] });
  assert.deepEqual(ones(tapsToMatrix(strided), 5, 3).sort(), ['0:1->1', '0:3->2', '1:0->0', '1:2->1', '1:4->2', '2:1->0', '2:3->1'].sort());
});
