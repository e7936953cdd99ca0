import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import {
  decodeEvalView,
  decodeEvalViewBuffer,
  decodeImage,
  decodeImageBuffer,
  probeImage,
} from '../../src/image/decode.js';
import { makeImage, makeTempDir, pixelAt, removeTempDir, sharedPhoto, sharpFromImage } from './fixtures.js';

const red: [number, number, number] = [255, 0, 0];
const green: [number, number, number] = [0, 255, 0];
const blue: [number, number, number] = [0, 0, 255];

let dir: string;

before(async () => {
  dir = await makeTempDir();
});

after(async () => {
  await removeTempDir(dir);
});

describe('decodeEvalView', () => {
  test('output is inputSize square', async () => {
    const file = path.join(dir, 'wide.png');
    await sharpFromImage(makeImage(300, 170, (x, y) => [x % 256, y, 50])).png().toFile(file);
    for (const inputSize of [224, 96, 1]) {
      const view = await decodeEvalView(file, inputSize);
      assert.equal(view.width, inputSize);
      assert.equal(view.height, inputSize);
      assert.equal(view.data.length, inputSize * inputSize * 3);
    }
  });

  test('left red, right blue halves', async () => {
    // 460 wide halves to 230, then the 224 crop starts at column 3, so resized column 115 (source
    // columns 230 and 231, the first blue ones) becomes output column 112.
    const file = path.join(dir, 'halves.png');
    await sharpFromImage(makeImage(460, 460, (x) => (x < 230 ? red : blue))).png().toFile(file);
    const view = await decodeEvalView(file, 224);

    assert.deepEqual(pixelAt(view, 0, 100), red);
    assert.deepEqual(pixelAt(view, 110, 100), red);
    assert.deepEqual(pixelAt(view, 113, 100), blue);
    assert.deepEqual(pixelAt(view, 223, 100), blue);
    // The triangle filter at scale 2 weighs source columns 227..230 as 1/8, 3/8, 3/8, 1/8 for output
    // column 111, so 7/8 of it is red: 255 * 7 / 8 = 223.1. Column 112 mirrors it.
    assert.deepEqual(pixelAt(view, 111, 100), [223, 0, 32]);
    assert.deepEqual(pixelAt(view, 112, 100), [32, 0, 223]);
  });

  test('centre crop top rounds half to even', async () => {
    // 460x690 resizes to 230x345. (345 - 224) / 2 = 60.5 rounds to 60 as in Python, not 61.
    // Output row 0 is resized row 60, made from source rows 119..122 with weights 1/8, 3/8, 3/8, 1/8.
    const file = path.join(dir, 'bands.png');
    const colourAt = (_x: number, y: number) => {
      if (y < 120) {
        return red;
      }
      return y < 122 ? green : blue;
    };
    await sharpFromImage(makeImage(460, 690, colourAt)).png().toFile(file);
    const view = await decodeEvalView(file, 224);

    assert.deepEqual(pixelAt(view, 5, 0), [32, 191, 32]);
    assert.deepEqual(pixelAt(view, 5, 1), [0, 32, 223]);
    assert.deepEqual(pixelAt(view, 5, 2), blue);
  });

  test('224 image is centre of 230 resize', async () => {
    const image = makeImage(224, 224, (x, y) => [x, y, (x * 7 + y * 3) % 256]);
    const file = path.join(dir, 'gradient.png');
    await sharpFromImage(image).png().toFile(file);
    const view = await decodeEvalView(file, 224);

    const expected = await sharpFromImage(image)
      .resize(230, 230, { fit: 'fill', kernel: 'linear' })
      .extract({ left: 3, top: 3, width: 224, height: 224 })
      .raw()
      .toBuffer();
    assert.deepEqual(Buffer.from(view.data), expected);

    // On the gradient, output (u, v) samples the source at (u + 3.5) * 224 / 230 - 0.5 on each axis.
    for (const [u, v] of [
      [0, 0],
      [50, 120],
      [111, 7],
      [223, 223],
    ]) {
      const [gotX, gotY] = pixelAt(view, u, v);
      const expectedX = ((u + 3.5) * 224) / 230 - 0.5;
      const expectedY = ((v + 3.5) * 224) / 230 - 0.5;
      assert.ok(Math.abs(gotX - expectedX) <= 1, `red at (${u}, ${v}): ${gotX} vs ${expectedX}`);
      assert.ok(Math.abs(gotY - expectedY) <= 1, `green at (${u}, ${v}): ${gotY} vs ${expectedY}`);
    }
  });

  test('buffer variant matches file variant', async () => {
    const file = path.join(dir, 'gradient.png');
    const fromFile = await decodeEvalView(file, 224);
    const fromBuffer = await decodeEvalViewBuffer(await readFile(file), 'upload', 224);
    assert.deepEqual(fromBuffer, fromFile);
  });

  test('rejects invalid inputSize', async () => {
    await assert.rejects(decodeEvalView(path.join(dir, 'gradient.png'), 0), RangeError);
    await assert.rejects(decodeEvalView(path.join(dir, 'gradient.png'), 22.5), RangeError);
  });
});

describe('decodeImage', () => {
  test('decodes exact pixels of a PNG', async () => {
    const image = makeImage(31, 17, (x, y) => [x * 8, y * 15, 200]);
    const file = path.join(dir, 'exact.png');
    await sharpFromImage(image).png().toFile(file);
    const decoded = await decodeImage(file);
    assert.equal(decoded.width, 31);
    assert.equal(decoded.height, 17);
    assert.deepEqual(decoded.data, image.data);
  });

  test('maxShortSide shrinks large images', async () => {
    const file = path.join(dir, 'large.png');
    await sharpFromImage(makeImage(400, 300, () => [40, 120, 200])).png().toFile(file);
    const decoded = await decodeImage(file, { maxShortSide: 150 });
    assert.equal(decoded.width, 200);
    assert.equal(decoded.height, 150);
    assert.deepEqual(pixelAt(decoded, 100, 75), [40, 120, 200]);
  });

  test('maxShortSide never enlarges', async () => {
    const file = path.join(dir, 'small.png');
    await sharpFromImage(makeImage(100, 80, () => [1, 2, 3])).png().toFile(file);
    const decoded = await decodeImage(file, { maxShortSide: 150 });
    assert.equal(decoded.width, 100);
    assert.equal(decoded.height, 80);
  });

  test('buffer variant names the source', async () => {
    const file = path.join(dir, 'exact.png');
    assert.deepEqual(await decodeImageBuffer(await readFile(file), 'upload'), await decodeImage(file));
    await assert.rejects(decodeImageBuffer(Buffer.from('not an image'), 'upload.png'), /^ImageDecodeError: upload\.png: /);
  });

  test('rejects invalid maxShortSide and maxPixels', async () => {
    const file = path.join(dir, 'exact.png');
    await assert.rejects(decodeImage(file, { maxShortSide: 0 }), RangeError);
    await assert.rejects(decodeImage(file, { maxPixels: -1 }), RangeError);
  });
});

describe('probeImage', () => {
  test('returns width and height', async () => {
    const file = path.join(dir, 'probe.png');
    await sharpFromImage(makeImage(37, 21, () => [0, 0, 0])).png().toFile(file);
    assert.deepEqual(await probeImage(file), { width: 37, height: 21 });
  });
});

describe('shared photo', () => {
  test('decodes to 224x224x3', async () => {
    const decoded = await decodeImage(sharedPhoto);
    assert.equal(decoded.width, 224);
    assert.equal(decoded.height, 224);
    assert.equal(decoded.data.length, 224 * 224 * 3);

    const view = await decodeEvalView(sharedPhoto, 224);
    assert.equal(view.width, 224);
    assert.equal(view.height, 224);
    assert.equal(view.data.length, 224 * 224 * 3);

    // A photo has many distinct colours; a decoder bug that returns a constant buffer would not.
    const distinct = new Set<number>();
    for (let i = 0; i < view.data.length; i += 3) {
      distinct.add((view.data[i] << 16) | (view.data[i + 1] << 8) | view.data[i + 2]);
    }
    assert.ok(distinct.size > 1000, `only ${distinct.size} distinct colours`);

    const reference = await sharp(sharedPhoto).raw().toBuffer();
    assert.deepEqual(Buffer.from(decoded.data), reference);
  });
});
