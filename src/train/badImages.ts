// The policy for images that cannot be decoded: stop before training with the full list, or skip them
// and record which were skipped.
import type { ImageDecodeError } from '../image/decode.js';

/** Policy for images that cannot be decoded. */
export type BadImagePolicy = 'error' | 'skip';

/** Error listing every image of the data set that cannot be decoded. */
export class BadImagesError extends Error {
  constructor(readonly failures: readonly ImageDecodeError[]) {
    const count = failures.length === 1 ? '1 image' : `${failures.length} images`;
    super(
      [`${count} of the data set cannot be decoded:`, ...failures.map((failure) => `  ${failure.message}`), 'Fix or remove these files, or pass --on-bad-image skip to train without them.'].join('\n'),
    );
    this.name = 'BadImagesError';
  }
}

/** A skipped image, as recorded in config.json. */
export interface SkippedImage {
  file: string;
  reason: string;
}
