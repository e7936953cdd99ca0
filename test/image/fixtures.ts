// Helpers shared by the image tests: synthetic images, a temporary folder, and a PNG decompression bomb.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';
import sharp, { type Sharp } from 'sharp';
import type { RgbImage } from '../../src/image/decode.js';

export type Rgb = [number, number, number];

/** The repository root, found from this file's location in dist/test/image/. */
export const repoRoot = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');

/** Path of one real 224x224 JPEG of the shared scene data set. */
export const sharedPhoto = path.resolve(repoRoot, '../shared/data/miml-scenes/train/2.jpg');

export async function makeTempDir(): Promise<string> {
  return mkdtemp(path.join(tmpdir(), 'multitag-image-test-'));
}

export async function removeTempDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Builds an RGB image whose pixel (x, y) has the colour colourAt(x, y). */
export function makeImage(width: number, height: number, colourAt: (x: number, y: number) => Rgb): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      data.set(colourAt(x, y), (y * width + x) * 3);
    }
  }
  return { width, height, data };
}

/** Wraps an RgbImage as a sharp raw input, ready to be encoded in any format. */
export function sharpFromImage(image: RgbImage): Sharp {
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } });
}

export function pixelAt(image: RgbImage, x: number, y: number): Rgb {
  const index = (y * image.width + x) * 3;
  return [image.data[index], image.data[index + 1], image.data[index + 2]];
}

/** Builds a deterministic noise image, in which neighbouring pixels almost always differ. */
export function noiseImage(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  let state = 12345;
  for (let i = 0; i < data.length; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    data[i] = state >>> 24;
  }
  return { width, height, data };
}

function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) {
      crc = crc & 1 ? 0xedb88320 ^ (crc >>> 1) : crc >>> 1;
    }
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, body: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length);
  const typeAndBody = Buffer.concat([Buffer.from(type, 'ascii'), body]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typeAndBody));
  return Buffer.concat([length, typeAndBody, crc]);
}

/**
 * Builds a valid PNG header that declares a width x height 8-bit RGB image, followed by only two rows of
 * compressed pixel data: a file of a few hundred bytes that would need width * height * 3 bytes decoded.
 */
export function decompressionBombPng(width: number, height: number): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // colour type RGB
  const row = Buffer.alloc(1 + width * 3);
  const signature = Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]);
  return Buffer.concat([
    signature,
    pngChunk('IHDR', header),
    pngChunk('IDAT', deflateSync(Buffer.concat([row, row]))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}
