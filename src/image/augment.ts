// The training transform: torchvision's RandomRotation, RandomResizedCrop and RandomHorizontalFlip,
// rendered as one inverse affine map with one bilinear resampling step.

import type { RgbImage } from './decode.js';
import type { Random } from './random.js';

export interface AugmentOptions {
  /** Maximum rotation in degrees. The angle is uniform in [-rotationDegrees, rotationDegrees]. */
  rotationDegrees: number;
  /** Range of the crop area as a fraction of the image area. */
  scale: [number, number];
  /** Range of the crop aspect ratio (width / height), sampled uniformly on a log scale. */
  ratio: [number, number];
  /** Probability of a horizontal flip. */
  flipProbability: number;
}

export const defaultAugmentOptions: AugmentOptions = {
  rotationDegrees: 10,
  scale: [0.7, 1],
  ratio: [3 / 4, 4 / 3],
  flipProbability: 0.5,
};

/** A crop rectangle in whole pixels. */
export interface CropBox {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** The random choices behind one augmented view. */
export interface AugmentParams {
  /** Rotation of the image content about its centre, counter-clockwise as in torchvision. */
  angleDegrees: number;
  /** Crop taken from the rotated image, which has the size of the source image. */
  crop: CropBox;
  /** Whether the cropped view is mirrored left to right. */
  flip: boolean;
}

function validateOptions(options: AugmentOptions): void {
  const { rotationDegrees, scale, ratio, flipProbability } = options;
  if (!Number.isFinite(rotationDegrees) || rotationDegrees < 0) {
    throw new RangeError(`rotationDegrees must be a finite number >= 0, got ${rotationDegrees}.`);
  }
  if (!(scale[0] > 0 && scale[0] <= scale[1] && Number.isFinite(scale[1]))) {
    throw new RangeError(`scale must be [min, max] with 0 < min <= max, got [${scale.join(', ')}].`);
  }
  if (!(ratio[0] > 0 && ratio[0] <= ratio[1] && Number.isFinite(ratio[1]))) {
    throw new RangeError(`ratio must be [min, max] with 0 < min <= max, got [${ratio.join(', ')}].`);
  }
  if (!(flipProbability >= 0 && flipProbability <= 1)) {
    throw new RangeError(`flipProbability must be in [0, 1], got ${flipProbability}.`);
  }
}

function validateImage(image: RgbImage): void {
  const { width, height, data } = image;
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`Image size must be positive integers, got ${width}x${height}.`);
  }
  if (data.length !== width * height * 3) {
    throw new RangeError(`Image data has ${data.length} bytes but a ${width}x${height} RGB image needs ${width * height * 3}.`);
  }
}

/** Rounds half to even, like Python's round(), which torchvision uses for crop sizes. */
function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  if (value - floor !== 0.5) {
    return Math.round(value);
  }
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * Samples torchvision's RandomResizedCrop.get_params: up to 10 attempts that draw an area fraction
 * uniformly from scale and an aspect ratio log-uniformly from ratio, accepting the first crop that fits.
 * If none fits, it falls back to the largest central crop whose aspect ratio lies within ratio.
 */
export function sampleResizedCrop(
  width: number,
  height: number,
  random: Random,
  scale: [number, number],
  ratio: [number, number],
): CropBox {
  const area = width * height;
  const logRatioMin = Math.log(ratio[0]);
  const logRatioMax = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * random.uniform(scale[0], scale[1]);
    const aspectRatio = Math.exp(random.uniform(logRatioMin, logRatioMax));
    const cropWidth = roundHalfEven(Math.sqrt(targetArea * aspectRatio));
    const cropHeight = roundHalfEven(Math.sqrt(targetArea / aspectRatio));
    if (cropWidth > 0 && cropWidth <= width && cropHeight > 0 && cropHeight <= height) {
      const top = random.integer(height - cropHeight + 1);
      const left = random.integer(width - cropWidth + 1);
      return { left, top, width: cropWidth, height: cropHeight };
    }
  }

  const inputRatio = width / height;
  let cropWidth = width;
  let cropHeight = height;
  if (inputRatio < ratio[0]) {
    cropHeight = roundHalfEven(cropWidth / ratio[0]);
  } else if (inputRatio > ratio[1]) {
    cropWidth = roundHalfEven(cropHeight * ratio[1]);
  }
  return {
    left: Math.floor((width - cropWidth) / 2),
    top: Math.floor((height - cropHeight) / 2),
    width: cropWidth,
    height: cropHeight,
  };
}

/** Draws the rotation angle, then the crop, then the flip, in torchvision's order. */
export function sampleAugmentParams(
  width: number,
  height: number,
  random: Random,
  options: AugmentOptions = defaultAugmentOptions,
): AugmentParams {
  validateOptions(options);
  const angleDegrees = random.uniform(-options.rotationDegrees, options.rotationDegrees);
  const crop = sampleResizedCrop(width, height, random, options.scale, options.ratio);
  const flip = random.next() < options.flipProbability;
  return { angleDegrees, crop, flip };
}

/**
 * Renders the view that params describe as an inputSize x inputSize image. Each output pixel centre is
 * mapped back through the flip, the crop resize and the inverse rotation to a point in the source, which
 * is sampled bilinearly. Points outside the source rectangle are black. Inside it, neighbours beyond the
 * edge are clamped to the edge pixels, as in torchvision's resize.
 *
 * When the crop is downscaled by a factor f >= 1.5 along an output axis, each output pixel averages
 * round(f) bilinear samples along that axis, an approximation of torchvision's antialiased resize.
 * Below that factor a single bilinear sample is taken, which aliases little. Averaging costs about
 * round(f)^2 times as much, so cache training images decoded with a maxShortSide near the input size.
 */
export function renderAugmentedView(image: RgbImage, inputSize: number, params: AugmentParams): RgbImage {
  validateImage(image);
  if (!Number.isSafeInteger(inputSize) || inputSize < 1) {
    throw new RangeError(`inputSize must be a positive integer, got ${inputSize}.`);
  }
  const { crop, flip } = params;
  if (!Number.isFinite(params.angleDegrees)) {
    throw new RangeError(`angleDegrees must be finite, got ${params.angleDegrees}.`);
  }
  if (!(crop.width > 0 && crop.height > 0 && Number.isFinite(crop.left) && Number.isFinite(crop.top))) {
    throw new RangeError(`Crop must have a finite position and a positive size, got ${JSON.stringify(crop)}.`);
  }

  const { width, height } = image;
  const centreX = width / 2;
  const centreY = height / 2;
  const angle = (params.angleDegrees * Math.PI) / 180;
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);

  // Output pixel (u, v) has its centre at (u + 0.5, v + 0.5). In the rotated image (edge coordinates,
  // y down) that centre lies at X = crop.left + (u + 0.5) * scaleX, Y = crop.top + (v + 0.5) * scaleY,
  // with u replaced by inputSize - 1 - u when flipped. Undoing a counter-clockwise rotation gives the
  // source point x = cx + cos * (X - cx) - sin * (Y - cy), y = cy + sin * (X - cx) + cos * (Y - cy).
  const scaleX = crop.width / inputSize;
  const scaleY = crop.height / inputSize;
  const stepX = flip ? -scaleX : scaleX;
  const firstX = flip ? crop.left + crop.width - 0.5 * scaleX : crop.left + 0.5 * scaleX;
  const firstY = crop.top + 0.5 * scaleY;

  // The map is affine: source = origin + u * du + v * dv, in source edge coordinates.
  const duX = cos * stepX;
  const duY = sin * stepX;
  const dvX = -sin * scaleY;
  const dvY = cos * scaleY;
  const originX = centreX + cos * (firstX - centreX) - sin * (firstY - centreY);
  const originY = centreY + sin * (firstX - centreX) + cos * (firstY - centreY);

  const samplesU = scaleX >= 1.5 ? Math.round(scaleX) : 1;
  const samplesV = scaleY >= 1.5 ? Math.round(scaleY) : 1;
  const output = new Uint8Array(inputSize * inputSize * 3);
  if (samplesU === 1 && samplesV === 1) {
    renderSingleSample(image, inputSize, output, originX, originY, duX, duY, dvX, dvY);
  } else {
    renderSupersampled(image, inputSize, output, originX, originY, duX, duY, dvX, dvY, samplesU, samplesV);
  }
  return { width: inputSize, height: inputSize, data: output };
}

/** Renders with one bilinear sample per output pixel, the common case, in a loop without function calls. */
function renderSingleSample(
  image: RgbImage,
  inputSize: number,
  output: Uint8Array,
  originX: number,
  originY: number,
  duX: number,
  duY: number,
  dvX: number,
  dvY: number,
): void {
  const { width, height, data } = image;
  const lastX = width - 1;
  const lastY = height - 1;
  const rowStride = width * 3;
  let target = 0;
  for (let v = 0; v < inputSize; v++) {
    let x = originX + v * dvX;
    let y = originY + v * dvY;
    for (let u = 0; u < inputSize; u++, x += duX, y += duY, target += 3) {
      if (x < 0 || y < 0 || x >= width || y >= height) {
        continue; // output starts zeroed, so the pixel stays black
      }
      // Shift from edge to centre coordinates, then clamp so edge pixels extend to the rectangle border.
      let sx = x - 0.5;
      let sy = y - 0.5;
      if (sx < 0) sx = 0;
      if (sy < 0) sy = 0;
      const x0 = sx > lastX ? lastX : sx | 0;
      const y0 = sy > lastY ? lastY : sy | 0;
      const fx = sx - x0;
      const fy = sy - y0;
      const x1Offset = x0 < lastX ? 3 : 0;
      const y1Offset = y0 < lastY ? rowStride : 0;
      const p00 = y0 * rowStride + x0 * 3;
      const p01 = p00 + x1Offset;
      const p10 = p00 + y1Offset;
      const p11 = p10 + x1Offset;
      const w00 = (1 - fx) * (1 - fy);
      const w01 = fx * (1 - fy);
      const w10 = (1 - fx) * fy;
      const w11 = fx * fy;
      output[target] = w00 * data[p00] + w01 * data[p01] + w10 * data[p10] + w11 * data[p11] + 0.5;
      output[target + 1] = w00 * data[p00 + 1] + w01 * data[p01 + 1] + w10 * data[p10 + 1] + w11 * data[p11 + 1] + 0.5;
      output[target + 2] = w00 * data[p00 + 2] + w01 * data[p01 + 2] + w10 * data[p10 + 2] + w11 * data[p11 + 2] + 0.5;
    }
  }
}

/** Renders with samplesU x samplesV bilinear samples per output pixel, spread evenly over its footprint. */
function renderSupersampled(
  image: RgbImage,
  inputSize: number,
  output: Uint8Array,
  originX: number,
  originY: number,
  duX: number,
  duY: number,
  dvX: number,
  dvY: number,
  samplesU: number,
  samplesV: number,
): void {
  const { width, height, data } = image;
  const lastX = width - 1;
  const lastY = height - 1;
  const rowStride = width * 3;
  const sampleCount = samplesU * samplesV;
  // Steps between sub-samples, and the offset of the first sub-sample from the pixel centre.
  const subDuX = duX / samplesU;
  const subDuY = duY / samplesU;
  const subDvX = dvX / samplesV;
  const subDvY = dvY / samplesV;
  const firstOffsetU = 0.5 / samplesU - 0.5;
  const firstOffsetV = 0.5 / samplesV - 0.5;

  let target = 0;
  for (let v = 0; v < inputSize; v++) {
    for (let u = 0; u < inputSize; u++, target += 3) {
      let red = 0;
      let green = 0;
      let blue = 0;
      const cornerX = originX + (u + firstOffsetU) * duX + (v + firstOffsetV) * dvX;
      const cornerY = originY + (u + firstOffsetU) * duY + (v + firstOffsetV) * dvY;

      for (let j = 0; j < samplesV; j++) {
        let x = cornerX + j * subDvX;
        let y = cornerY + j * subDvY;
        for (let i = 0; i < samplesU; i++, x += subDuX, y += subDuY) {
          if (x < 0 || y < 0 || x >= width || y >= height) {
            continue; // a black sample adds nothing
          }

          let sx = x - 0.5;
          let sy = y - 0.5;
          if (sx < 0) sx = 0;
          if (sy < 0) sy = 0;
          const x0 = sx > lastX ? lastX : sx | 0;
          const y0 = sy > lastY ? lastY : sy | 0;
          const fx = sx - x0;
          const fy = sy - y0;
          const x1Offset = x0 < lastX ? 3 : 0;
          const p00 = y0 * rowStride + x0 * 3;
          const p01 = p00 + x1Offset;
          const p10 = p00 + (y0 < lastY ? rowStride : 0);
          const p11 = p10 + x1Offset;
          const w00 = (1 - fx) * (1 - fy);
          const w01 = fx * (1 - fy);
          const w10 = (1 - fx) * fy;
          const w11 = fx * fy;

          red += w00 * data[p00] + w01 * data[p01] + w10 * data[p10] + w11 * data[p11];
          green += w00 * data[p00 + 1] + w01 * data[p01 + 1] + w10 * data[p10 + 1] + w11 * data[p11 + 1];
          blue += w00 * data[p00 + 2] + w01 * data[p01 + 2] + w10 * data[p10 + 2] + w11 * data[p11 + 2];
        }
      }

      output[target] = red / sampleCount + 0.5;
      output[target + 1] = green / sampleCount + 0.5;
      output[target + 2] = blue / sampleCount + 0.5;
    }
  }
}

/**
 * Produces one training view of the image, equal in distribution to torchvision's RandomRotation
 * (about the centre, size kept, corners black), then RandomResizedCrop(inputSize, scale, ratio), then
 * RandomHorizontalFlip, but resampled once. torchvision's RandomRotation uses nearest-neighbour
 * sampling by default, where this uses bilinear sampling throughout.
 */
export function augmentView(
  image: RgbImage,
  inputSize: number,
  random: Random,
  options: AugmentOptions = defaultAugmentOptions,
): RgbImage {
  validateImage(image);
  const params = sampleAugmentParams(image.width, image.height, random, options);
  return renderAugmentedView(image, inputSize, params);
}
