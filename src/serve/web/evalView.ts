// The evaluation view (resize so the short side is round(inputSize * 230 / 224), centre crop) and its
// normalisation in plain JavaScript, for the web page's in-browser mode. This module imports nothing, so
// the server sends its compiled file to browsers unchanged, and the tests run the same file in Node.
//
// The server computes the view with sharp: resize(width, height, { fit: 'fill', kernel: 'linear' })
// then extract. A canvas drawImage resize puts the sampling grid half a pixel elsewhere and filters
// differently: on 224x224 JPEGs in Chromium 156 its pixels differ by about 5 levels on average. So this
// file ports the libvips 8.18 operations that sharp 0.35 runs for that call, integer arithmetic included:
// - downsizing: vertical, then horizontal. A factor of 4 or more is first box-shrunk by
//   floor(factor / 2) (libvips' "gap" 2.0), then the residual is reduced with a triangle filter whose
//   coefficients are 12-bit integers looked up at 1/64-pixel steps.
// - upsizing: an affine transform with libvips' fixed-point bilinear interpolator, sampling output pixel
//   X at input position X / scale - 0.5 with the edge pixels repeated.
// The tests compare the output with sharp on lossless images of many sizes.
// NOTE: sharp decodes a JPEG whose short side is at least three times the resized short side at 1/2,
// 1/4 or 1/8 scale inside libjpeg ("shrink-on-load"). A browser cannot decode that way, so for such
// JPEGs the in-browser view differs slightly from the server's.

/** 8-bit pixels in row-major order with 3 (RGB) or 4 (RGBA, alpha ignored) channels per pixel. */
export interface PixelImage {
  width: number;
  height: number;
  channels: 3 | 4;
  data: Uint8Array | Uint8ClampedArray;
}

/** Size of the resized image and position of the centre crop inside it. */
export interface EvalViewGeometry {
  resizedWidth: number;
  resizedHeight: number;
  left: number;
  top: number;
}

/** Per-channel mean and standard deviation on the 0..1 pixel scale, in RGB order. */
export interface ChannelNormalization {
  mean: readonly number[];
  std: readonly number[];
}

/** Fixed-point scale of libvips' interpolation coefficients (VIPS_INTERPOLATE_SHIFT 12). */
const interpolateShift = 12;
const interpolateScale = 1 << interpolateShift;
/** Sub-pixel steps of libvips' reduce coefficient tables (VIPS_TRANSFORM_SCALE). */
const transformScale = 64;
/** libvips resize's default "gap": factors of 2 * gap or more start with an integer box shrink. */
const reduceGap = 2;

/** Rounds half to even, like C's rint() in the default rounding mode and Python's round(). */
function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  const fraction = value - floor;
  if (fraction !== 0.5) {
    return Math.round(value);
  }
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * Computes the resize and crop of the evaluation view, as decodeEvalViewBuffer in src/image/decode.ts
 * does: the short side becomes round(inputSize * 230 / 224), the long side is truncated, and the crop
 * offsets round half to even like torchvision's CenterCrop.
 */
export function evalViewGeometry(width: number, height: number, inputSize: number): EvalViewGeometry {
  for (const [name, value] of [['width', width], ['height', height], ['inputSize', inputSize]] as const) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(`${name} must be a positive integer, got ${value}.`);
    }
  }
  const shortSide = Math.round((inputSize * 230) / 224);
  const resizedWidth = width <= height ? shortSide : Math.floor((shortSide * width) / height);
  const resizedHeight = width <= height ? Math.floor((shortSide * height) / width) : shortSide;
  const left = roundHalfEven((resizedWidth - inputSize) / 2);
  const top = roundHalfEven((resizedHeight - inputSize) / 2);
  return { resizedWidth, resizedHeight, left, top };
}

/** A 3-channel working image. */
interface Rgb {
  width: number;
  height: number;
  data: Uint8Array;
}

function toRgb(image: PixelImage): Rgb {
  const { width, height, channels, data } = image;
  if (channels !== 3 && channels !== 4) {
    throw new RangeError(`channels must be 3 or 4, got ${String(channels)}.`);
  }
  if (data.length !== width * height * channels) {
    throw new RangeError(`A ${width}x${height} image with ${channels} channels needs ${width * height * channels} bytes, got ${data.length}.`);
  }
  if (channels === 3) {
    return { width, height, data: data instanceof Uint8Array ? data : new Uint8Array(data) };
  }
  const rgb = new Uint8Array(width * height * 3);
  for (let pixel = 0, source = 0, target = 0; pixel < width * height; pixel++, source += 4, target += 3) {
    rgb[target] = data[source];
    rgb[target + 1] = data[source + 1];
    rgb[target + 2] = data[source + 2];
  }
  return { width, height, data: rgb };
}

/**
 * Box-shrinks one axis by an integer factor with libvips' "ceil" rounding, so a partial last block
 * repeats the edge pixel. The mean is libvips' SIMD form: (sum + factor / 2) * floor(2^32 / (256 *
 * factor)) >> 24, which can be one level below the rounded mean when factor is not a power of two.
 */
function shrinkAxis(image: Rgb, factor: number, vertical: boolean): Rgb {
  const { width, height, data } = image;
  const outWidth = vertical ? width : Math.ceil(width / factor);
  const outHeight = vertical ? Math.ceil(height / factor) : height;
  const out = new Uint8Array(outWidth * outHeight * 3);
  const multiplier = Math.floor(2 ** 32 / (256 * factor));
  const amend = factor >> 1;
  for (let y = 0; y < outHeight; y++) {
    for (let x = 0; x < outWidth; x++) {
      for (let channel = 0; channel < 3; channel++) {
        let sum = amend;
        for (let step = 0; step < factor; step++) {
          const sourceX = vertical ? x : Math.min(x * factor + step, width - 1);
          const sourceY = vertical ? Math.min(y * factor + step, height - 1) : y;
          sum += data[(sourceY * width + sourceX) * 3 + channel];
        }
        out[(y * outWidth + x) * 3 + channel] = Math.min(255, Math.floor((sum * multiplier) / 2 ** 24));
      }
    }
  }
  return { width: outWidth, height: outHeight, data: out };
}

/** Builds libvips' triangle-filter coefficient tables, one per 1/64 pixel of sub-pixel position. */
function triangleTables(factor: number): Int32Array[] {
  const points = 2 * roundHalfEven(factor) + 1;
  const tables: Int32Array[] = [];
  for (let step = 0; step <= transformScale; step++) {
    const half = step / transformScale + points / 2 - 1;
    const weights = new Float64Array(points);
    let sum = 0;
    for (let i = 0; i < points; i++) {
      const weight = Math.max(0, 1 - Math.abs((i - half) / factor));
      weights[i] = weight;
      sum += weight;
    }
    const table = new Int32Array(points);
    for (let i = 0; i < points; i++) {
      table[i] = Math.trunc((weights[i] / sum) * interpolateScale);
    }
    tables.push(table);
  }
  return tables;
}

/** Returns the coefficient table index of input position `position`, as libvips reduce does. */
function tableIndex(position: number): number {
  const scaled = Math.trunc(position * transformScale * 2);
  return ((scaled & (transformScale * 2 - 1)) + 1) >> 1;
}

/**
 * Reduces one axis by a factor of at least 1 to `outLength` samples (libvips vips_reduceh or
 * vips_reducev with the linear kernel and gap 2). Only outputs in [first, first + count) are computed;
 * the others stay 0, because the crop never reads them.
 */
function reduceAxis(image: Rgb, factor: number, outLength: number, vertical: boolean, first: number, count: number): Rgb {
  const inLength = vertical ? image.height : image.width;
  // libvips spreads the input pixels that a rounded output size leaves unused over both ends.
  let residual = factor;
  let extraPixels = outLength * factor - inLength;
  let source = image;
  const boxFactor = Math.floor(factor / reduceGap);
  if (boxFactor > 1) {
    source = shrinkAxis(image, boxFactor, vertical);
    residual = factor / boxFactor;
    extraPixels /= boxFactor;
  }
  const offset = (1 + extraPixels) / 2 - 1;

  const { width, height, data } = source;
  const length = vertical ? height : width;
  const points = 2 * roundHalfEven(residual) + 1;
  const margin = Math.ceil(points / 2) - 1;
  const tables = triangleTables(residual);
  const outWidth = vertical ? width : outLength;
  const outHeight = vertical ? outLength : height;
  const out = new Uint8Array(outWidth * outHeight * 3);

  // Horizontal positions accumulate from output 0, as libvips steps along a row; vertical positions
  // are computed per row.
  let position = 0.5 * residual - 0.5 - offset;
  for (let index = 0; index < first + count && index < outLength; index++) {
    if (vertical) {
      position = (index + 0.5) * residual - 0.5 - offset;
    }
    if (index >= first) {
      const start = Math.trunc(position) - margin;
      const table = tables[tableIndex(position)];
      const across = vertical ? width : height;
      for (let line = 0; line < across; line++) {
        for (let channel = 0; channel < 3; channel++) {
          let sum = interpolateScale >> 1;
          for (let i = 0; i < points; i++) {
            const sample = Math.min(Math.max(start + i, 0), length - 1);
            const at = vertical ? (sample * width + line) * 3 : (line * width + sample) * 3;
            sum += table[i] * data[at + channel];
          }
          const target = vertical ? (index * outWidth + line) * 3 : (line * outWidth + index) * 3;
          out[target + channel] = Math.min(255, Math.max(0, sum >> interpolateShift));
        }
      }
    }
    if (!vertical) {
      position += residual;
    }
  }
  return { width: outWidth, height: outHeight, data: out };
}

/**
 * Upsizes with libvips' affine transform and fixed-point bilinear interpolator, writing only the
 * inputSize x inputSize crop at (left, top). hscale and vscale are output size / input size.
 */
function upsizeCrop(image: Rgb, hscale: number, vscale: number, left: number, top: number, size: number): Uint8Array {
  const { width, height, data } = image;
  // libvips inverts the matrix [hscale 0; 0 vscale] through its determinant.
  const determinant = hscale * vscale;
  const stepX = vscale / determinant;
  const stepY = hscale / determinant;
  // Input positions are in an image padded by one pixel (so + 1) and displaced by half a pixel (- 0.5).
  const positionsX = new Float64Array(left + size);
  let x = 0 * stepX + 1 - 0.5;
  for (let column = 0; column < left + size; column++) {
    positionsX[column] = x;
    x += stepX;
  }

  const out = new Uint8Array(size * size * 3);
  for (let row = 0; row < size; row++) {
    const y = stepY * (top + row) + (1 - 0.5);
    const yInteger = Math.trunc(y);
    const yWeight = Math.trunc((y - yInteger) * interpolateScale);
    const y0 = Math.min(Math.max(yInteger - 1, 0), height - 1);
    const y1 = Math.min(Math.max(yInteger, 0), height - 1);
    for (let column = 0; column < size; column++) {
      const xPosition = positionsX[left + column];
      const xInteger = Math.trunc(xPosition);
      const xWeight = Math.trunc((xPosition - xInteger) * interpolateScale);
      const x0 = Math.min(Math.max(xInteger - 1, 0), width - 1);
      const x1 = Math.min(Math.max(xInteger, 0), width - 1);

      const yComplement = interpolateScale - yWeight;
      const c4 = (yWeight * xWeight) >> interpolateShift;
      const c2 = (yComplement * xWeight) >> interpolateShift;
      const c3 = yWeight - c4;
      const c1 = yComplement - c2;
      const p1 = (y0 * width + x0) * 3;
      const p2 = (y0 * width + x1) * 3;
      const p3 = (y1 * width + x0) * 3;
      const p4 = (y1 * width + x1) * 3;
      const target = (row * size + column) * 3;
      for (let channel = 0; channel < 3; channel++) {
        const value = (c1 * data[p1 + channel] + c2 * data[p2 + channel] + c3 * data[p3 + channel] + c4 * data[p4 + channel] + (interpolateScale >> 1)) >> interpolateShift;
        out[target + channel] = Math.min(255, Math.max(0, value));
      }
    }
  }
  return out;
}

function cropRgb(image: Rgb, left: number, top: number, size: number): Uint8Array {
  const out = new Uint8Array(size * size * 3);
  for (let row = 0; row < size; row++) {
    const start = ((top + row) * image.width + left) * 3;
    out.set(image.data.subarray(start, start + size * 3), row * size * 3);
  }
  return out;
}

/**
 * Computes the inputSize x inputSize evaluation view of decoded pixels, as RGB bytes in row-major order,
 * with the same resize and crop as the server.
 */
export function evalView(image: PixelImage, inputSize: number): Uint8Array {
  let rgb = toRgb(image);
  const { resizedWidth, resizedHeight, left, top } = evalViewGeometry(rgb.width, rgb.height, inputSize);
  // sharp passes 1 / (input / output) to libvips as the scale, and libvips inverts it again.
  const hscale = 1 / (rgb.width / resizedWidth);
  const vscale = 1 / (rgb.height / resizedHeight);

  if (vscale < 1) {
    rgb = reduceAxis(rgb, 1 / vscale, resizedHeight, true, top, inputSize);
  }
  if (hscale < 1) {
    rgb = reduceAxis(rgb, 1 / hscale, resizedWidth, false, left, inputSize);
  }
  if (hscale > 1 || vscale > 1) {
    return upsizeCrop(rgb, Math.max(hscale, 1), Math.max(vscale, 1), left, top, inputSize);
  }
  return cropRgb(rgb, left, top, inputSize);
}

/**
 * Converts an RGB view into float32 CHW values (pixel / 255 - mean[c]) / std[c], the model input of one
 * image. The arithmetic matches normalizeInto in src/image/normalize.ts: the value is computed in double
 * precision, then rounded to float32.
 */
export function normalizeView(view: Uint8Array, size: number, normalization: ChannelNormalization, out?: Float32Array, offset = 0): Float32Array {
  const pixels = size * size;
  if (view.length !== pixels * 3) {
    throw new RangeError(`A ${size}x${size} RGB view needs ${pixels * 3} bytes, got ${view.length}.`);
  }
  const target = out ?? new Float32Array(pixels * 3);
  const tables = [0, 1, 2].map((channel) => {
    const table = new Float32Array(256);
    for (let value = 0; value < 256; value++) {
      table[value] = (value / 255 - normalization.mean[channel]) / normalization.std[channel];
    }
    return table;
  });
  for (let pixel = 0; pixel < pixels; pixel++) {
    for (let channel = 0; channel < 3; channel++) {
      target[offset + channel * pixels + pixel] = tables[channel][view[pixel * 3 + channel]];
    }
  }
  return target;
}
