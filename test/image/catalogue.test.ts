// One test per kind of input file that a data set can contain, good or bad, asserting the exact outcome.

import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { augmentView } from '../../src/image/augment.js';
import {
  decodeEvalView,
  decodeImage,
  ImageDecodeError,
  type ImageDecodeReason,
  probeImage,
  type RgbImage,
} from '../../src/image/decode.js';
import { Random } from '../../src/image/random.js';
import {
  decompressionBombPng,
  makeImage,
  makeTempDir,
  noiseImage,
  pixelAt,
  removeTempDir,
  type Rgb,
  sharpFromImage,
} from './fixtures.js';

let dir: string;

before(async () => {
  dir = await makeTempDir();
});

after(async () => {
  await removeTempDir(dir);
});

/** Asserts that promise rejects with an ImageDecodeError for file with the given reason and message part. */
async function assertDecodeError(
  promise: Promise<unknown>,
  file: string,
  reason: ImageDecodeReason,
  messagePart: RegExp,
): Promise<ImageDecodeError> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ImageDecodeError, `expected ImageDecodeError, got ${String(caught)}`);
  assert.equal(caught.file, file);
  assert.equal(caught.reason, reason);
  assert.ok(caught.message.startsWith(`${file}: `), `message should start with the file: ${caught.message}`);
  assert.match(caught.message, messagePart);
  assert.doesNotMatch(caught.message, /\n|\s+at\s/, 'message should be one line without a stack');
  return caught;
}

function uniformColour(image: RgbImage): Rgb | undefined {
  const first = pixelAt(image, 0, 0);
  for (let i = 0; i < image.data.length; i += 3) {
    if (image.data[i] !== first[0] || image.data[i + 1] !== first[1] || image.data[i + 2] !== first[2]) {
      return undefined;
    }
  }
  return first;
}

/** An 8x8 image whose top four rows are orange and bottom four rows teal, colours inside the CMYK gamut. */
const twoColours = makeImage(8, 8, (_x, y) => (y < 4 ? [200, 120, 60] : [60, 140, 140]));

describe('bad files', () => {
  test('zero-byte file', async () => {
    const file = path.join(dir, 'empty.jpg');
    await writeFile(file, Buffer.alloc(0));
    await assertDecodeError(decodeImage(file), file, 'empty', /file is empty \(0 bytes\)\. Replace it/);
    await assertDecodeError(decodeEvalView(file, 224), file, 'empty', /0 bytes/);
    await assertDecodeError(probeImage(file), file, 'empty', /0 bytes/);
  });

  test('truncated JPEG', async () => {
    const file = path.join(dir, 'truncated.jpg');
    const whole = await sharpFromImage(noiseImage(300, 200)).jpeg({ quality: 90 }).toBuffer();
    await writeFile(file, whole.subarray(0, Math.floor(whole.length * 0.6)));
    await assertDecodeError(decodeImage(file), file, 'corrupt', /image data is truncated or corrupt \(libvips: .*premature end/);
    await assertDecodeError(decodeEvalView(file, 224), file, 'corrupt', /truncated or corrupt/);
    // The header is intact, so the cheap probe still reads the size.
    assert.deepEqual(await probeImage(file), { width: 300, height: 200 });
  });

  test('text file named .jpg', async () => {
    const file = path.join(dir, 'notes.jpg');
    await writeFile(file, 'hello, this is text\n');
    await assertDecodeError(
      decodeImage(file),
      file,
      'unsupported-format',
      /not a JPEG, PNG, WebP, GIF, TIFF, AVIF or SVG image \(first bytes: 68 65 6c 6c 6f 2c 20 74\)\. Convert it/,
    );
    await assertDecodeError(probeImage(file), file, 'unsupported-format', /not a JPEG, PNG, WebP, GIF, TIFF, AVIF or SVG image/);
  });

  test('JPEG with extraneous bytes decodes', async () => {
    // libjpeg warns about bytes between segments but decodes the image, and so does decodeImage.
    const jpeg = await sharpFromImage(makeImage(16, 16, () => [90, 60, 30])).jpeg({ quality: 100 }).toBuffer();
    const startOfScan = jpeg.indexOf(Buffer.from([0xff, 0xda]));
    const file = path.join(dir, 'extraneous.jpg');
    await writeFile(file, Buffer.concat([jpeg.subarray(0, startOfScan), Buffer.from([1, 2, 3, 4]), jpeg.subarray(startOfScan)]));
    await assert.rejects(sharp(file, { failOn: 'warning' }).raw().toBuffer(), /extraneous bytes/);

    const decoded = await decodeImage(file);
    const [red, green, blue] = pixelAt(decoded, 8, 8);
    assert.ok(Math.abs(red - 90) <= 3, `red ${red}`);
    assert.ok(Math.abs(green - 60) <= 3, `green ${green}`);
    assert.ok(Math.abs(blue - 30) <= 3, `blue ${blue}`);
  });

  test('missing file', async () => {
    const file = path.join(dir, 'missing.jpg');
    await assertDecodeError(decodeImage(file), file, 'not-found', /file not found\. Check the path/);
    await assertDecodeError(probeImage(file), file, 'not-found', /file not found/);
  });

  test('directory instead of file', async () => {
    await assertDecodeError(decodeImage(dir), dir, 'not-a-file', /is a directory/);
    await assertDecodeError(probeImage(dir), dir, 'not-a-file', /is a directory/);
  });

  test('decompression bomb', async () => {
    const file = path.join(dir, 'bomb.png');
    await writeFile(file, decompressionBombPng(100000, 100000));
    const started = performance.now();
    await assertDecodeError(
      decodeImage(file),
      file,
      'too-many-pixels',
      /image is 100000x100000 = 10000000000 pixels, more than the limit of 100000000 pixels\. .*raise the limit with the maxPixels option/,
    );
    await assertDecodeError(decodeEvalView(file, 224), file, 'too-many-pixels', /maxPixels/);
    await assertDecodeError(probeImage(file), file, 'too-many-pixels', /maxPixels/);
    assert.ok(performance.now() - started < 2000, 'rejection should not decode the pixels');
  });

  test('custom pixel limit', async () => {
    const file = path.join(dir, 'limit.png');
    await sharpFromImage(makeImage(64, 48, () => [1, 2, 3])).png().toFile(file);
    await assertDecodeError(
      decodeImage(file, { maxPixels: 3000 }),
      file,
      'too-many-pixels',
      /64x48 = 3072 pixels, more than the limit of 3000 pixels/,
    );
    const decoded = await decodeImage(file, { maxPixels: 3072 });
    assert.equal(decoded.width, 64);
  });
});

describe('image formats', () => {
  test('PNG with alpha composites onto black', async () => {
    // Columns: transparent white, half-transparent white, opaque green.
    const rgba = Buffer.from([255, 255, 255, 0, 255, 255, 255, 128, 0, 200, 0, 255]);
    const file = path.join(dir, 'alpha.png');
    await sharp(rgba, { raw: { width: 3, height: 1, channels: 4 } }).png().toFile(file);
    const decoded = await decodeImage(file);
    assert.deepEqual(pixelAt(decoded, 0, 0), [0, 0, 0]);
    assert.deepEqual(pixelAt(decoded, 1, 0), [128, 128, 128]);
    assert.deepEqual(pixelAt(decoded, 2, 0), [0, 200, 0]);
  });

  test('grayscale PNG', async () => {
    const file = path.join(dir, 'gray.png');
    const gray = Buffer.from([0, 77, 200, 255]);
    await sharp(gray, { raw: { width: 4, height: 1, channels: 1 } }).toColourspace('b-w').png().toFile(file);
    assert.equal((await sharp(file).metadata()).channels, 1);
    const decoded = await decodeImage(file);
    assert.deepEqual(Array.from(decoded.data), [0, 0, 0, 77, 77, 77, 200, 200, 200, 255, 255, 255]);
  });

  test('grayscale with alpha PNG', async () => {
    const file = path.join(dir, 'gray-alpha.png');
    const grayAlpha = Buffer.from([200, 255, 200, 0, 100, 51]);
    await sharp(grayAlpha, { raw: { width: 3, height: 1, channels: 2 } }).toColourspace('b-w').png().toFile(file);
    const metadata = await sharp(file).metadata();
    assert.equal(metadata.channels, 2);
    assert.equal(metadata.hasAlpha, true);
    const decoded = await decodeImage(file);
    // 100 * 51 / 255 = 20.
    assert.deepEqual(Array.from(decoded.data), [200, 200, 200, 0, 0, 0, 20, 20, 20]);
  });

  test('CMYK JPEG converts to sRGB', async () => {
    const file = path.join(dir, 'cmyk.jpg');
    await sharpFromImage(twoColours).toColourspace('cmyk').jpeg({ quality: 100 }).toFile(file);
    assert.equal((await sharp(file).metadata()).space, 'cmyk');
    const decoded = await decodeImage(file);
    assert.equal(decoded.data.length, 8 * 8 * 3);
    // The sRGB -> CMYK -> sRGB round trip through ICC profiles and JPEG is close but not exact.
    for (const [y, expected] of [
      [1, [200, 120, 60]],
      [6, [60, 140, 140]],
    ] as const) {
      const got = pixelAt(decoded, 3, y);
      for (let channel = 0; channel < 3; channel++) {
        assert.ok(Math.abs(got[channel] - expected[channel]) <= 20, `row ${y}: ${got} vs ${expected}`);
      }
    }
  });

  test('16-bit PNG keeps the high byte', async () => {
    const file = path.join(dir, 'sixteen.png');
    const samples = new Uint16Array([1000, 32896, 65535, 0, 257, 51400]);
    await sharp(samples, { raw: { width: 2, height: 1, channels: 3 } }).toColourspace('rgb16').png().toFile(file);
    assert.equal((await sharp(file).metadata()).depth, 'ushort');
    const decoded = await decodeImage(file);
    assert.deepEqual(Array.from(decoded.data), [3, 128, 255, 0, 1, 200]);
  });

  test('palette PNG', async () => {
    const file = path.join(dir, 'palette.png');
    await sharpFromImage(twoColours).png({ palette: true, colours: 4, dither: 0 }).toFile(file);
    assert.equal((await sharp(file).metadata()).isPalette, true);
    const decoded = await decodeImage(file);
    assert.deepEqual(pixelAt(decoded, 0, 0), [200, 120, 60]);
    assert.deepEqual(pixelAt(decoded, 7, 7), [60, 140, 140]);
  });

  test('EXIF orientation 6 JPEG', async () => {
    // Stored 60 wide and 40 high, blue with a red 10x10 marker at the stored top-left. Orientation 6 means
    // the viewer rotates 90 degrees clockwise, so the marker ends at the top-right of a 40x60 image.
    const stored = makeImage(60, 40, (x, y) => (x < 10 && y < 10 ? [255, 0, 0] : [0, 0, 255]));
    const file = path.join(dir, 'rotated.jpg');
    await sharpFromImage(stored).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toFile(file);
    assert.equal((await sharp(file).metadata()).orientation, 6);

    const decoded = await decodeImage(file);
    assert.equal(decoded.width, 40);
    assert.equal(decoded.height, 60);
    // JPEG compression blurs the colours, so each channel gets a margin.
    const [topRightRed, , topRightBlue] = pixelAt(decoded, 35, 4);
    assert.ok(topRightRed > 200, `top-right red channel ${topRightRed}`);
    assert.ok(topRightBlue < 50, `top-right blue channel ${topRightBlue}`);
    const [topLeftRed, , topLeftBlue] = pixelAt(decoded, 4, 4);
    assert.ok(topLeftRed < 50, `top-left red channel ${topLeftRed}`);
    assert.ok(topLeftBlue > 200, `top-left blue channel ${topLeftBlue}`);
    assert.deepEqual(await probeImage(file), { width: 40, height: 60 });
  });

  test('lossless WebP', async () => {
    const file = path.join(dir, 'image.webp');
    await sharpFromImage(twoColours).webp({ lossless: true }).toFile(file);
    assert.deepEqual(await decodeImage(file), twoColours);
  });

  test('GIF', async () => {
    const file = path.join(dir, 'image.gif');
    await sharpFromImage(twoColours).gif().toFile(file);
    assert.deepEqual(await decodeImage(file), twoColours);
  });

  test('TIFF', async () => {
    const file = path.join(dir, 'image.tiff');
    await sharpFromImage(twoColours).tiff({ compression: 'lzw' }).toFile(file);
    assert.deepEqual(await decodeImage(file), twoColours);
  });

  test('1x1 image gives full-size views', async () => {
    const file = path.join(dir, 'one.png');
    await sharpFromImage(makeImage(1, 1, () => [10, 150, 250])).png().toFile(file);
    const image = await decodeImage(file);
    assert.deepEqual(image, { width: 1, height: 1, data: new Uint8Array([10, 150, 250]) });

    const evalView = await decodeEvalView(file, 224);
    assert.equal(evalView.width, 224);
    assert.equal(evalView.height, 224);
    assert.deepEqual(uniformColour(evalView), [10, 150, 250]);

    const trainView = augmentView(image, 224, new Random(1));
    assert.equal(trainView.width, 224);
    assert.equal(trainView.height, 224);
    assert.deepEqual(pixelAt(trainView, 112, 112), [10, 150, 250]);
  });

  test('file name with spaces and accents', async () => {
    const file = path.join(dir, 'été photo.jpg');
    await sharpFromImage(makeImage(40, 30, () => [90, 90, 90])).jpeg().toFile(file);
    const decoded = await decodeImage(file);
    assert.equal(decoded.width, 40);
    assert.equal((await decodeEvalView(file, 32)).width, 32);
    assert.deepEqual(await probeImage(file), { width: 40, height: 30 });

    const broken = path.join(dir, 'été cassé.jpg');
    await writeFile(broken, (await readFile(file)).subarray(0, 100));
    const error = await assertDecodeError(decodeImage(broken), broken, 'corrupt', /truncated or corrupt/);
    assert.ok(error.message.includes('été cassé.jpg'));
  });
});
