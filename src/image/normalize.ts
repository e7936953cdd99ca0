// Conversion of 8-bit RGB views into the normalised float32 CHW tensors that backbones take as input.

import type { RgbImage } from './decode.js';

/** Per-channel mean and standard deviation on the 0..1 pixel scale, in RGB order. */
export interface Normalization {
  mean: [number, number, number];
  std: [number, number, number];
}

/** The ImageNet statistics used by torchvision's pretrained models. */
export const imagenetNormalization: Normalization = {
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
};

/**
 * Maps 0..255 to -1..1 (pixel / 127.5 - 1), the "inception" preprocessing of TensorFlow's MobileNet and
 * Inception checkpoints.
 */
export const inceptionNormalization: Normalization = {
  mean: [0.5, 0.5, 0.5],
  std: [0.5, 0.5, 0.5],
};

const lookupTables = new Map<string, Float32Array[]>();

/** Returns one 256-entry table per channel, built once per distinct mean/std and then reused. */
function channelLookupTables(normalization: Normalization): Float32Array[] {
  const { mean, std } = normalization;
  const key = `${mean.join(',')}/${std.join(',')}`;
  const cached = lookupTables.get(key);
  if (cached !== undefined) {
    return cached;
  }

  for (let channel = 0; channel < 3; channel++) {
    if (!Number.isFinite(mean[channel]) || !Number.isFinite(std[channel]) || std[channel] === 0) {
      throw new RangeError(
        `Normalization needs finite means and finite, non-zero standard deviations, got mean ` +
          `[${mean.join(', ')}] and std [${std.join(', ')}].`,
      );
    }
  }
  const tables = [0, 1, 2].map((channel) => {
    const table = new Float32Array(256);
    for (let value = 0; value < 256; value++) {
      table[value] = (value / 255 - mean[channel]) / std[channel];
    }
    return table;
  });
  lookupTables.set(key, tables);
  return tables;
}

/**
 * Writes the view as CHW float32 values (pixel / 255 - mean[c]) / std[c] into out, starting at offset:
 * all red values first, row by row, then green, then blue. It writes width * height * 3 values and throws
 * a RangeError if they do not fit.
 */
export function normalizeInto(view: RgbImage, normalization: Normalization, out: Float32Array, offset: number): void {
  const pixels = view.width * view.height;
  if (view.data.length !== pixels * 3) {
    throw new RangeError(
      `normalizeInto: view data has ${view.data.length} bytes but a ${view.width}x${view.height} RGB view needs ${pixels * 3}.`,
    );
  }
  if (!Number.isInteger(offset) || offset < 0 || offset + pixels * 3 > out.length) {
    throw new RangeError(
      `normalizeInto: ${pixels * 3} values starting at offset ${offset} do not fit an output of length ${out.length}.`,
    );
  }

  const [red, green, blue] = channelLookupTables(normalization);
  const data = view.data;
  const greenOffset = offset + pixels;
  const blueOffset = offset + 2 * pixels;
  for (let pixel = 0, source = 0; pixel < pixels; pixel++, source += 3) {
    out[offset + pixel] = red[data[source]];
    out[greenOffset + pixel] = green[data[source + 1]];
    out[blueOffset + pixel] = blue[data[source + 2]];
  }
}
