import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type AugmentOptions,
  augmentView,
  defaultAugmentOptions,
  renderAugmentedView,
  sampleAugmentParams,
  sampleResizedCrop,
} from '../../src/image/augment.js';
import { Random } from '../../src/image/random.js';
import { makeImage, noiseImage, pixelAt } from './fixtures.js';

const identityOptions: AugmentOptions = { rotationDegrees: 0, scale: [1, 1], ratio: [1, 1], flipProbability: 0 };
const red: [number, number, number] = [255, 0, 0];
const blue: [number, number, number] = [0, 0, 255];
const black: [number, number, number] = [0, 0, 0];

describe('augmentView', () => {
  test('output shape', () => {
    const image = noiseImage(300, 200);
    for (const inputSize of [224, 64, 1]) {
      const view = augmentView(image, inputSize, new Random(inputSize));
      assert.equal(view.width, inputSize);
      assert.equal(view.height, inputSize);
      assert.equal(view.data.length, inputSize * inputSize * 3);
    }
  });

  test('identity options copy the image', () => {
    const image = noiseImage(224, 224);
    const view = augmentView(image, 224, new Random(1), identityOptions);
    assert.deepEqual(view.data, image.data);
  });

  test('flip probability 1 mirrors', () => {
    const image = noiseImage(224, 224);
    const view = augmentView(image, 224, new Random(1), { ...identityOptions, flipProbability: 1 });
    for (const [x, y] of [
      [0, 0],
      [5, 100],
      [111, 223],
      [223, 17],
    ]) {
      assert.deepEqual(pixelAt(view, x, y), pixelAt(image, 223 - x, y), `pixel (${x}, ${y})`);
    }
  });

  test('10 degree rotation blackens corners', () => {
    const image = makeImage(224, 224, () => [30, 160, 90]);
    const params = { angleDegrees: 10, crop: { left: 0, top: 0, width: 224, height: 224 }, flip: false };
    const view = renderAugmentedView(image, 224, params);
    for (const [x, y] of [
      [0, 0],
      [223, 0],
      [0, 223],
      [223, 223],
    ]) {
      assert.deepEqual(pixelAt(view, x, y), black, `corner (${x}, ${y})`);
    }
    assert.deepEqual(pixelAt(view, 112, 112), [30, 160, 90]);
    assert.deepEqual(pixelAt(view, 40, 112), [30, 160, 90]);
    // Row 0 has centre y = 0.5, so d = (x + 0.5 - 112, -111.5) from the image centre. Undoing the rotation
    // gives source offsets (cos10 * dx + sin10 * 111.5, sin10 * dx - cos10 * 111.5), and both must stay
    // within 112: 99.36 <= x + 0.5 <= 206.07. A clockwise rotation would mirror this to columns 17..124.
    assert.deepEqual(pixelAt(view, 98, 0), black);
    assert.deepEqual(pixelAt(view, 99, 0), [30, 160, 90]);
    assert.deepEqual(pixelAt(view, 205, 0), [30, 160, 90]);
    assert.deepEqual(pixelAt(view, 206, 0), black);
  });

  test('positive angle rotates counter-clockwise', () => {
    // A red block at the middle of the right edge moves to the middle of the top edge.
    const image = makeImage(224, 224, (x, y) => (x >= 200 && y >= 100 && y < 124 ? red : blue));
    const params = { angleDegrees: 90, crop: { left: 0, top: 0, width: 224, height: 224 }, flip: false };
    const view = renderAugmentedView(image, 224, params);
    assert.deepEqual(pixelAt(view, 112, 10), red);
    assert.deepEqual(pixelAt(view, 112, 213), blue);
    assert.deepEqual(pixelAt(view, 213, 112), blue);
  });

  test('crop is resized to the output', () => {
    // Output (u, v) of a 2x enlargement of the top-left quadrant samples the source at
    // ((u + 0.5) / 2 - 0.5, (v + 0.5) / 2 - 0.5), clamped to the first pixel at the edge.
    const image = makeImage(224, 224, (x, y) => [x, y, 0]);
    const params = { angleDegrees: 0, crop: { left: 0, top: 0, width: 112, height: 112 }, flip: false };
    const view = renderAugmentedView(image, 224, params);
    assert.deepEqual(pixelAt(view, 0, 0), [0, 0, 0]);
    assert.deepEqual(pixelAt(view, 10, 20), [5, 10, 0]); // 4.75 and 9.75
    assert.deepEqual(pixelAt(view, 11, 21), [5, 10, 0]); // 5.25 and 10.25
    assert.deepEqual(pixelAt(view, 223, 223), [111, 111, 0]); // 111.25 and 111.25
  });

  test('samples outside the source are black', () => {
    const image = makeImage(10, 10, () => [200, 200, 200]);
    const params = { angleDegrees: 45, crop: { left: 0, top: 0, width: 10, height: 10 }, flip: false };
    const view = renderAugmentedView(image, 100, params);
    assert.deepEqual(pixelAt(view, 0, 0), black);
    assert.deepEqual(pixelAt(view, 50, 50), [200, 200, 200]);
  });

  test('large downscale averages samples', () => {
    // A one-pixel checkerboard shrunk 3 times: a single bilinear sample at each output centre would hit
    // one source pixel and give pure black or white. With 3x3 samples each output averages 9 pixels.
    const image = makeImage(672, 672, (x, y) => ((x + y) % 2 === 0 ? [255, 255, 255] : [0, 0, 0]));
    const params = { angleDegrees: 0, crop: { left: 0, top: 0, width: 672, height: 672 }, flip: false };
    const view = renderAugmentedView(image, 224, params);
    for (let i = 0; i < view.data.length; i++) {
      assert.ok(view.data[i] === 113 || view.data[i] === 142, `value ${view.data[i]} at ${i}`);
    }
  });

  test('same seed gives same view', () => {
    const image = noiseImage(256, 200);
    const first = augmentView(image, 224, new Random(99));
    const second = augmentView(image, 224, new Random(99));
    const other = augmentView(image, 224, new Random(100));
    assert.deepEqual(first, second);
    assert.notDeepEqual(first.data, other.data);
  });

  test('equals render of sampled params', () => {
    const image = noiseImage(256, 200);
    const params = sampleAugmentParams(256, 200, new Random(5));
    assert.deepEqual(augmentView(image, 224, new Random(5)), renderAugmentedView(image, 224, params));
  });

  test('flips happen about half the time', () => {
    const image = makeImage(224, 224, (x) => (x < 112 ? red : blue));
    const options: AugmentOptions = { ...defaultAugmentOptions, rotationDegrees: 0, scale: [1, 1], ratio: [1, 1] };
    let flipped = 0;
    const runs = 400;
    for (let seed = 0; seed < runs; seed++) {
      const view = augmentView(image, 32, new Random(seed), options);
      if (pixelAt(view, 0, 16)[2] === 255) {
        flipped++;
      } else {
        assert.deepEqual(pixelAt(view, 0, 16), red);
      }
    }
    // The count has standard deviation 10, so [160, 240] is 4 standard deviations.
    assert.ok(flipped > 160, `${flipped} of ${runs} flipped`);
    assert.ok(flipped < 240, `${flipped} of ${runs} flipped`);
  });

  test('rejects invalid options', () => {
    const image = noiseImage(8, 8);
    const random = new Random(1);
    assert.throws(() => augmentView(image, 8, random, { ...defaultAugmentOptions, scale: [0, 1] }), RangeError);
    assert.throws(() => augmentView(image, 8, random, { ...defaultAugmentOptions, ratio: [2, 1] }), RangeError);
    assert.throws(() => augmentView(image, 8, random, { ...defaultAugmentOptions, flipProbability: 2 }), RangeError);
    assert.throws(() => augmentView(image, 8, random, { ...defaultAugmentOptions, rotationDegrees: -1 }), RangeError);
    assert.throws(() => augmentView({ width: 8, height: 8, data: new Uint8Array(10) }, 8, random), RangeError);
  });
});

describe('sampleAugmentParams', () => {
  test('statistics over many seeds', () => {
    const width = 320;
    const height = 240;
    const runs = 4000;
    let flips = 0;
    let angleSum = 0;
    let areaSum = 0;
    for (let seed = 0; seed < runs; seed++) {
      const { angleDegrees, crop, flip } = sampleAugmentParams(width, height, new Random(seed));

      assert.ok(angleDegrees >= -10, `angle ${angleDegrees}`);
      assert.ok(angleDegrees < 10, `angle ${angleDegrees}`);
      assert.ok(crop.left >= 0, `crop ${JSON.stringify(crop)}`);
      assert.ok(crop.top >= 0, `crop ${JSON.stringify(crop)}`);
      assert.ok(crop.left + crop.width <= width, `crop ${JSON.stringify(crop)}`);
      assert.ok(crop.top + crop.height <= height, `crop ${JSON.stringify(crop)}`);

      // Rounding the crop sides to whole pixels moves the area fraction and the ratio slightly.
      const areaFraction = (crop.width * crop.height) / (width * height);
      assert.ok(areaFraction >= 0.69, `area fraction ${areaFraction}`);
      assert.ok(areaFraction <= 1, `area fraction ${areaFraction}`);
      const ratio = crop.width / crop.height;
      assert.ok(ratio >= 0.74, `ratio ${ratio}`);
      assert.ok(ratio <= 1.35, `ratio ${ratio}`);

      flips += flip ? 1 : 0;
      angleSum += angleDegrees;
      areaSum += areaFraction;
    }

    // Standard deviations: flips 32, mean angle 0.09, mean area fraction about 0.0012.
    assert.ok(flips > 1850, `${flips} of ${runs} flipped`);
    assert.ok(flips < 2150, `${flips} of ${runs} flipped`);
    assert.ok(Math.abs(angleSum / runs) < 0.5, `mean angle ${angleSum / runs}`);
    // Large crops of a 4:3 image fit only with a ratio near 4/3, so many are redrawn. That lowers the mean
    // from 0.85 to about 0.804 (estimated by simulating torchvision's sampling with 400000 draws).
    assert.ok(areaSum / runs > 0.795, `mean area fraction ${areaSum / runs}`);
    assert.ok(areaSum / runs < 0.815, `mean area fraction ${areaSum / runs}`);
  });

  test('same seed gives same params', () => {
    assert.deepEqual(sampleAugmentParams(300, 200, new Random(3)), sampleAugmentParams(300, 200, new Random(3)));
  });
});

describe('sampleResizedCrop', () => {
  test('falls back to central crop', () => {
    // Scale [2, 3] never fits, so all 10 attempts fail. A 400x100 image is wider than ratio 4/3 allows,
    // so the fallback keeps the full height and takes width round(100 * 4 / 3) = 133.
    const crop = sampleResizedCrop(400, 100, new Random(1), [2, 3], [3 / 4, 4 / 3]);
    assert.deepEqual(crop, { left: 133, top: 0, width: 133, height: 100 });

    const tall = sampleResizedCrop(100, 400, new Random(1), [2, 3], [3 / 4, 4 / 3]);
    assert.deepEqual(tall, { left: 0, top: 133, width: 100, height: 133 });

    const square = sampleResizedCrop(50, 50, new Random(1), [2, 3], [3 / 4, 4 / 3]);
    assert.deepEqual(square, { left: 0, top: 0, width: 50, height: 50 });
  });

  test('full scale with ratio 1 takes whole square image', () => {
    assert.deepEqual(sampleResizedCrop(224, 224, new Random(1), [1, 1], [1, 1]), {
      left: 0,
      top: 0,
      width: 224,
      height: 224,
    });
  });
});
