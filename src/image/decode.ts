// Image decoding with sharp (libvips): whole images for the training cache, evaluation views and header
// probes. Every failure is reported as an ImageDecodeError that names the file and the fix.

import type { Stats } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import sharp, { type OutputInfo, type Sharp, type SharpOptions } from 'sharp';

/** An 8-bit RGB image in HWC order: data[(y * width + x) * 3 + channel], length width * height * 3. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export interface DecodeOptions {
  /**
   * Maximum width * height, checked against the size declared in the file header before any pixel is
   * decoded, so a decompression bomb is rejected cheaply. Default defaultMaxPixels. Infinity disables it.
   */
  maxPixels?: number;
}

/** Default maximum pixel count (100 megapixels, about 300 MB as 8-bit RGB). */
export const defaultMaxPixels = 100_000_000;

/**
 * The evaluation transform resizes the short side to inputSize * 230 / 224 before the centre crop, the
 * Resize(230) + CenterCrop(224) of the PyTorch transfer-learning tutorial scaled to the input size.
 */
const evalResizeRatio = 230 / 224;

/** Machine-readable cause of an ImageDecodeError. */
export type ImageDecodeReason =
  | 'not-found'
  | 'not-a-file'
  | 'unreadable'
  | 'empty'
  | 'unsupported-format'
  | 'corrupt'
  | 'too-many-pixels';

/** A file that could not be read or decoded as an image. The message reads "<file>: <problem>. <fix>". */
export class ImageDecodeError extends Error {
  readonly file: string;
  readonly reason: ImageDecodeReason;

  constructor(file: string, reason: ImageDecodeReason, problem: string, fix: string, options?: ErrorOptions) {
    super(`${file}: ${problem}. ${fix}`, options);
    this.name = 'ImageDecodeError';
    this.file = file;
    this.reason = reason;
  }
}

const removeOrReplace = 'Replace it with a valid image, or leave it out.';

function resolveMaxPixels(options: DecodeOptions | undefined): number {
  const maxPixels = options?.maxPixels ?? defaultMaxPixels;
  if (maxPixels !== Number.POSITIVE_INFINITY && (!Number.isSafeInteger(maxPixels) || maxPixels < 1)) {
    throw new RangeError(`maxPixels must be a positive integer or Infinity, got ${maxPixels}.`);
  }
  return maxPixels;
}

function validateSize(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive integer, got ${value}.`);
  }
}

/** Sharp options shared by every decode. limitInputPixels false means no limit in sharp. */
function sharpInputOptions(maxPixels: number): SharpOptions {
  return {
    // 'error' rejects truncated files and data the decoder reports as an error. The stricter default
    // 'warning' would also reject JPEGs with harmless libjpeg warnings such as extraneous bytes before a
    // marker. NOTE: libjpeg reports some damage, such as a bad Huffman code, only as a warning, so such a
    // JPEG decodes with garbled regions instead of being rejected.
    failOn: 'error',
    limitInputPixels: maxPixels === Number.POSITIVE_INFINITY ? false : maxPixels,
    autoOrient: true,
  };
}

function directoryError(file: string, cause?: unknown): ImageDecodeError {
  return new ImageDecodeError(file, 'not-a-file', 'path is a directory, not an image file', 'Pass the path of an image file.', {
    cause,
  });
}

/** Turns a file-system error into an ImageDecodeError, or returns undefined for errors that are not about the file. */
function fileSystemError(file: string, error: unknown): ImageDecodeError | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new ImageDecodeError(file, 'not-found', 'file not found', 'Check the path and the working directory.', {
      cause: error,
    });
  }
  if (code === 'EISDIR') {
    return directoryError(file, error);
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new ImageDecodeError(file, 'unreadable', `file cannot be read (${code})`, 'Check the file permissions.', {
      cause: error,
    });
  }
  return undefined;
}

function emptyFileError(file: string): ImageDecodeError {
  return new ImageDecodeError(file, 'empty', 'file is empty (0 bytes)', removeOrReplace);
}

async function readImageFile(file: string): Promise<Buffer> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw fileSystemError(file, error) ?? error;
  }
  if (bytes.length === 0) {
    throw emptyFileError(file);
  }
  return bytes;
}

function describeLeadingBytes(bytes: Uint8Array | undefined): string {
  if (bytes === undefined || bytes.length === 0) {
    return '';
  }
  const hex = Array.from(bytes.subarray(0, 8), (byte) => byte.toString(16).padStart(2, '0')).join(' ');
  return ` (first bytes: ${hex})`;
}

/** Reads the declared size from the header without a pixel limit, for the message of a too-large image. */
async function declaredSize(input: Uint8Array | string): Promise<string> {
  try {
    const metadata = await sharp(input, { limitInputPixels: false }).metadata();
    return `${metadata.width}x${metadata.height} = ${metadata.width * metadata.height} pixels`;
  } catch {
    return 'larger than the pixel limit';
  }
}

/**
 * Converts an error raised by sharp while reading input into an ImageDecodeError. Errors about invalid
 * arguments (sharp's "Expected ..." messages) are programming errors and are returned unchanged.
 */
async function sharpDecodeError(
  file: string,
  error: unknown,
  input: Uint8Array | string,
  maxPixels: number,
): Promise<unknown> {
  if (!(error instanceof Error) || error.message.startsWith('Expected')) {
    return error;
  }
  const message = error.message;
  const bytes = typeof input === 'string' ? undefined : input;

  if (/exceeds pixel limit/i.test(message)) {
    const size = await declaredSize(input);
    return new ImageDecodeError(
      file,
      'too-many-pixels',
      `image is ${size}, more than the limit of ${maxPixels} pixels`,
      'If the image is genuine, raise the limit with the maxPixels option (--max-pixels in the CLI). Otherwise leave it out.',
      { cause: error },
    );
  }
  if (/unsupported image format/i.test(message)) {
    return new ImageDecodeError(
      file,
      'unsupported-format',
      `not a JPEG, PNG, WebP, GIF, TIFF, AVIF or SVG image${describeLeadingBytes(bytes)}`,
      'Convert it to JPEG or PNG, or leave it out.',
      { cause: error },
    );
  }
  if (/is empty/i.test(message)) {
    return emptyFileError(file);
  }
  if (/Input file is missing/i.test(message)) {
    return new ImageDecodeError(file, 'not-found', 'file not found', 'Check the path and the working directory.', {
      cause: error,
    });
  }
  // libvips reports truncation and bad data in many wordings; its first line names the decoder and problem.
  const detail = message.replace(/^Input (file|buffer) has corrupt header: /, '').split('\n')[0];
  return new ImageDecodeError(file, 'corrupt', `image data is truncated or corrupt (libvips: ${detail})`, removeOrReplace, {
    cause: error,
  });
}

function toRgbImage(data: Buffer, info: OutputInfo, file: string): RgbImage {
  if (info.channels !== 3 || data.length !== info.width * info.height * 3) {
    // The pipeline flattens alpha and converts to sRGB, so this means sharp behaved unexpectedly.
    throw new Error(`${file}: decoding produced ${info.channels} channels instead of 3 (sharp ${sharp.versions.sharp}).`);
  }
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

/**
 * Builds the decode pipeline shared by all decoders: EXIF orientation applied, alpha composited onto black,
 * colour converted to 8-bit sRGB. Black is also the fill colour of the augmentation (rotated corners and
 * samples outside the image), so transparent regions and padding give the model the same input. PIL's
 * convert('RGB'), common in PyTorch pipelines, instead drops alpha and keeps whatever colour the file stores
 * under transparent pixels.
 */
function rgbPipeline(bytes: Uint8Array, maxPixels: number): Sharp {
  return sharp(bytes, sharpInputOptions(maxPixels))
    .flatten({ background: { r: 0, g: 0, b: 0 } })
    .toColourspace('srgb');
}

/** Decodes image bytes, as decodeImage does for a file. name appears in error messages in place of a path. */
export async function decodeImageBuffer(
  bytes: Uint8Array,
  name: string,
  options?: DecodeOptions & { maxShortSide?: number },
): Promise<RgbImage> {
  const maxPixels = resolveMaxPixels(options);
  const maxShortSide = options?.maxShortSide;
  if (maxShortSide !== undefined) {
    validateSize('maxShortSide', maxShortSide);
  }
  if (bytes.length === 0) {
    throw emptyFileError(name);
  }

  let pipeline: Sharp = rgbPipeline(bytes, maxPixels);
  if (maxShortSide !== undefined) {
    // fit 'outside' scales both sides by one factor so that the short side equals maxShortSide.
    pipeline = pipeline.resize(maxShortSide, maxShortSide, {
      fit: 'outside',
      withoutEnlargement: true,
      kernel: 'lanczos3',
    });
  }
  try {
    const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
    return toRgbImage(data, info, name);
  } catch (error) {
    throw await sharpDecodeError(name, error, bytes, maxPixels);
  }
}

/**
 * Decodes an image file into 8-bit RGB. Handles JPEG (including CMYK), PNG (grayscale, palette, 16-bit),
 * WebP, GIF (first frame), TIFF, AVIF and SVG. Alpha is composited onto black. maxShortSide shrinks the
 * image with a Lanczos-3 kernel so its short side is at most that many pixels, and never enlarges it.
 * Throws ImageDecodeError for a missing, empty, unsupported, corrupt or too large file.
 */
export async function decodeImage(path: string, options?: DecodeOptions & { maxShortSide?: number }): Promise<RgbImage> {
  resolveMaxPixels(options);
  const bytes = await readImageFile(path);
  return decodeImageBuffer(bytes, path, options);
}

/** Rounds half to even, like Python's round(), which torchvision's CenterCrop uses. */
function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  const fraction = value - floor;
  if (fraction !== 0.5) {
    return Math.round(value);
  }
  return floor % 2 === 0 ? floor : floor + 1;
}

/** Decodes image bytes into an evaluation view, as decodeEvalView does for a file. */
export async function decodeEvalViewBuffer(
  bytes: Uint8Array,
  name: string,
  inputSize: number,
  options?: DecodeOptions,
): Promise<RgbImage> {
  validateSize('inputSize', inputSize);
  const maxPixels = resolveMaxPixels(options);
  if (bytes.length === 0) {
    throw emptyFileError(name);
  }

  try {
    const metadata = await sharp(bytes, sharpInputOptions(maxPixels)).metadata();
    const width = metadata.autoOrient.width;
    const height = metadata.autoOrient.height;

    // torchvision's Resize(size) sets the short side to size and truncates the long side.
    const shortSide = Math.round(inputSize * evalResizeRatio);
    const resizedWidth = width <= height ? shortSide : Math.floor((shortSide * width) / height);
    const resizedHeight = width <= height ? Math.floor((shortSide * height) / width) : shortSide;
    const left = roundHalfEven((resizedWidth - inputSize) / 2);
    const top = roundHalfEven((resizedHeight - inputSize) / 2);

    // libvips computes only the extracted region, so a huge upscaled long side costs no memory. The
    // 'linear' kernel is a triangle filter that widens when downscaling, like torchvision's default
    // antialiased bilinear Resize.
    const { data, info } = await rgbPipeline(bytes, maxPixels)
      .resize(resizedWidth, resizedHeight, { fit: 'fill', kernel: 'linear' })
      .extract({ left, top, width: inputSize, height: inputSize })
      .raw()
      .toBuffer({ resolveWithObject: true });
    return toRgbImage(data, info, name);
  } catch (error) {
    throw await sharpDecodeError(name, error, bytes, maxPixels);
  }
}

/**
 * Decodes the evaluation view of an image file: the short side resized to round(inputSize * 230 / 224),
 * then the central inputSize x inputSize crop. Throws ImageDecodeError as decodeImage does.
 */
export async function decodeEvalView(path: string, inputSize: number, options?: DecodeOptions): Promise<RgbImage> {
  validateSize('inputSize', inputSize);
  resolveMaxPixels(options);
  const bytes = await readImageFile(path);
  return decodeEvalViewBuffer(bytes, path, inputSize, options);
}

/**
 * Reads the width and height of an image file from its header, after EXIF orientation, without decoding
 * pixels. Throws ImageDecodeError for a missing, empty, unsupported or too large file. A file whose pixel
 * data is truncated after a valid header passes this check and fails only when decoded.
 */
export async function probeImage(path: string, options?: DecodeOptions): Promise<{ width: number; height: number }> {
  const maxPixels = resolveMaxPixels(options);
  let stats: Stats;
  try {
    stats = await stat(path);
  } catch (error) {
    throw fileSystemError(path, error) ?? error;
  }
  if (stats.isDirectory()) {
    throw directoryError(path);
  }
  if (stats.size === 0) {
    throw emptyFileError(path);
  }

  try {
    const metadata = await sharp(path, sharpInputOptions(maxPixels)).metadata();
    return { width: metadata.autoOrient.width, height: metadata.autoOrient.height };
  } catch (error) {
    throw await sharpDecodeError(path, error, path, maxPixels);
  }
}
