// Image loading for training and evaluation: decoded training images kept in memory for augmentation,
// evaluation views computed once, and batches normalised into NCHW float32 tensors.
import { availableParallelism } from 'node:os';
import type { ProgressCallback } from '../events.js';
import { augmentView, type AugmentOptions } from '../image/augment.js';
import { decodeEvalView, decodeImage, ImageDecodeError, type DecodeOptions, type RgbImage } from '../image/decode.js';
import { normalizeInto, type Normalization } from '../image/normalize.js';
import type { Random } from '../image/random.js';
import { mapConcurrent } from './parallel.js';

/** Settings that turn images into model inputs. */
export interface ImageSettings {
  /** Side of the square model input in pixels. */
  inputSize: number;
  normalization: Normalization;
  augment: AugmentOptions;
  decode: DecodeOptions;
  /** Images decoded at once; sharp decodes on libuv's thread pool. */
  concurrency?: number;
}

/** Returns the default decoding concurrency: two tasks per core keep sharp's threads busy. */
export function defaultConcurrency(): number {
  return Math.max(2, availableParallelism() * 2);
}

/**
 * Returns the short side that training images are shrunk to before augmentation. A random resized crop
 * keeps at least 70 % of the area, so a short side 256/224 of the input size leaves enough detail
 * while a 12-megapixel photo does not stay in memory at full size.
 */
export function workingShortSide(inputSize: number): number {
  return Math.round((inputSize * 256) / 224);
}

/** Decodes training images once, shrunk to the working size, for augmentation in every epoch. */
export async function loadTrainImages(paths: readonly string[], settings: ImageSettings, onProgress?: ProgressCallback): Promise<RgbImage[]> {
  const maxShortSide = workingShortSide(settings.inputSize);
  const total = paths.length;
  return mapConcurrent(
    paths,
    settings.concurrency ?? defaultConcurrency(),
    (path) => decodeImage(path, { ...settings.decode, maxShortSide }),
    (done) => onProgress?.({ task: 'decode train images', done, total, unit: 'images' }),
  );
}

/** Computes the evaluation view (resize, centre crop) of each image. */
export async function loadEvalViews(paths: readonly string[], settings: ImageSettings, task: string, onProgress?: ProgressCallback): Promise<RgbImage[]> {
  const total = paths.length;
  return mapConcurrent(
    paths,
    settings.concurrency ?? defaultConcurrency(),
    (path) => decodeEvalView(path, settings.inputSize, settings.decode),
    (done) => onProgress?.({ task, done, total, unit: 'images' }),
  );
}

/** Normalises views into one NCHW float32 batch. */
export function normalizeBatch(views: readonly RgbImage[], settings: ImageSettings, out?: Float32Array): Float32Array {
  const imageSize = 3 * settings.inputSize * settings.inputSize;
  const batch = out ?? new Float32Array(views.length * imageSize);
  views.forEach((view, index) => normalizeInto(view, settings.normalization, batch, index * imageSize));
  return batch;
}

/** Augments and normalises the images at `indices` into one batch, drawing randomness from `random`. */
export function augmentedBatch(images: readonly RgbImage[], indices: readonly number[], settings: ImageSettings, random: Random): Float32Array {
  const views = indices.map((index) => augmentView(images[index], settings.inputSize, random, settings.augment));
  return normalizeBatch(views, settings);
}

/** Images decoded one by one, with the files that failed and why. */
export interface DecodeOutcome {
  /** Decoded images, undefined where decoding failed; in the order of the paths. */
  images: (RgbImage | undefined)[];
  failures: ImageDecodeError[];
}

/**
 * Decodes every file with `decode`, collecting decode failures instead of stopping at the first, so
 * a user sees every bad file at once. Errors other than ImageDecodeError still propagate.
 */
export async function decodeAll(
  paths: readonly string[],
  decode: (path: string) => Promise<RgbImage>,
  task: string,
  settings: ImageSettings,
  onProgress?: ProgressCallback,
): Promise<DecodeOutcome> {
  const failures: ImageDecodeError[] = [];
  const total = paths.length;
  const images = await mapConcurrent(
    paths,
    settings.concurrency ?? defaultConcurrency(),
    async (path) => {
      try {
        return await decode(path);
      } catch (error) {
        if (error instanceof ImageDecodeError) {
          failures.push(error);
          return undefined;
        }
        throw error;
      }
    },
    (done) => onProgress?.({ task, done, total, unit: 'images' }),
  );
  return { images, failures };
}

/** Decodes a training image shrunk to the working size. */
export function trainImageDecoder(settings: ImageSettings): (path: string) => Promise<RgbImage> {
  const maxShortSide = workingShortSide(settings.inputSize);
  return (path) => decodeImage(path, { ...settings.decode, maxShortSide });
}

/** Decodes the evaluation view of an image. */
export function evalViewDecoder(settings: ImageSettings): (path: string) => Promise<RgbImage> {
  return (path) => decodeEvalView(path, settings.inputSize, settings.decode);
}
