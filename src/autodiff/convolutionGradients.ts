// Gradients of 2-D Conv, MaxPool and AveragePool. Each gradient picks the fastest standard-operator
// formulation that fits the node's kernel, stride and group count.
import { type NodeProto, intAttribute, intsAttribute } from '../onnx/model.js';
import { describeNode } from '../onnx/graph.js';
import { type GradientContext, UnsupportedGradientError } from './gradientContext.js';
import type { GraphBuilder, Shape } from './graphBuilder.js';
import { type WindowGeometry, windowGeometry } from './windowGeometry.js';
import { convolutionMatrixEntries, tapsToMatrix } from './depthwiseLowering.js';

/** Smallest int64, the standard Slice end for "through index 0" with a negative step. */
const INT64_MIN = -(2 ** 63);

interface ConvolutionSetup {
  node: NodeProto;
  input: string;
  weight: string;
  gradient: string;
  inputShape: Shape;
  weightShape: Shape;
  outputShape: Shape;
  geometry: WindowGeometry;
  group: number;
}

/** Returns the batch size that formulation choices assume for `setup`, or 0 when it is unknown. */
function expectedImages(setup: ConvolutionSetup, builder: GraphBuilder): number {
  return setup.inputShape[0] > 0 ? setup.inputShape[0] : (builder.expectedBatchSize ?? 0);
}

function isPointwise(setup: ConvolutionSetup): boolean {
  const { kernel, strides, padsBegin, padsEnd } = setup.geometry;
  return [...kernel, ...strides].every((value) => value === 1) && [...padsBegin, ...padsEnd].every((pad) => pad === 0);
}

/** Reverses the spatial axes of a [O, I, kh, kw] kernel. */
function flipKernel(builder: GraphBuilder, kernel: string): string {
  const starts = builder.constantInt64([-1, -1]);
  const ends = builder.constantInt64([INT64_MIN, INT64_MIN]);
  const axes = builder.constantInt64([2, 3]);
  const steps = builder.constantInt64([-1, -1]);
  return builder.add('Slice', [kernel, starts, ends, axes, steps], {}, { hint: `${kernel}_flipped` });
}

/**
 * Rearranges a Conv weight [M, C/g, kh, kw] into the weight [C, M/g, kh, kw] of the transposed
 * convolution, swapping input and output channels inside each group.
 */
function swapGroupChannels(builder: GraphBuilder, setup: ConvolutionSetup): string {
  const [outputChannels, groupInputChannels, kernelHeight, kernelWidth] = setup.weightShape;
  const group = setup.group;
  const groupOutputChannels = outputChannels / group;
  if (groupInputChannels === 1 && groupOutputChannels === 1) {
    return setup.weight;
  }
  if (group === 1) {
    return builder.transpose(setup.weight, [1, 0, 2, 3], `${setup.weight}_transposed`);
  }
  const grouped = builder.reshape(setup.weight, [group, groupOutputChannels, groupInputChannels, kernelHeight, kernelWidth]);
  const swapped = builder.transpose(grouped, [0, 2, 1, 3, 4]);
  return builder.reshape(swapped, [group * groupInputChannels, groupOutputChannels, kernelHeight, kernelWidth]);
}

/**
 * Gradient of the Conv input. A 1x1 convolution maps back with the transposed weight, a stride-1
 * convolution is a full convolution with the flipped kernel, and other strides use a grouped
 * ConvTranspose.
 */
function convolutionInputGradient(builder: GraphBuilder, setup: ConvolutionSetup): string {
  const { kernel, strides, padsBegin, padsEnd, inputSize, outputSize } = setup.geometry;
  if (isPointwise(setup) && setup.group === 1) {
    const transposed = builder.transpose(setup.weight, [1, 0, 2, 3], `${setup.weight}_transposed`);
    return builder.add('Conv', [setup.gradient, transposed], { kernel_shape: [1, 1] }, { hint: `${setup.input}_grad` });
  }

  const fullPadsBegin = kernel.map((size, axis) => size - 1 - padsBegin[axis]);
  const fullPadsEnd = kernel.map((size, axis) => size - 1 - padsEnd[axis]);
  if (strides.every((stride) => stride === 1) && [...fullPadsBegin, ...fullPadsEnd].every((pad) => pad >= 0)) {
    const flipped = flipKernel(builder, swapGroupChannels(builder, setup));
    return builder.add(
      'Conv',
      [setup.gradient, flipped],
      { group: setup.group, kernel_shape: kernel, pads: [...fullPadsBegin, ...fullPadsEnd] },
      { hint: `${setup.input}_grad` },
    );
  }

  // The forward pass skips input rows past the last window; output_padding restores them as zeros.
  const outputPadding = inputSize.map((size, axis) => size + padsBegin[axis] + padsEnd[axis] - kernel[axis] - strides[axis] * (outputSize[axis] - 1));
  return builder.add(
    'ConvTranspose',
    [setup.gradient, setup.weight],
    { group: setup.group, kernel_shape: kernel, strides, pads: [...padsBegin, ...padsEnd], output_padding: outputPadding },
    { hint: `${setup.input}_grad` },
  );
}

/**
 * Gradient of a 1x1 stride-1 Conv weight, gW [M, C] = sum over images n of gY[n] [M, H*W] times
 * X[n]ᵀ [H*W, C], in whichever of two forms moves less memory:
 * - one product per image: a batched MatMul gives N products of size M*C, and a ReduceSum adds them.
 *   onnxruntime 1.31 fuses the Transpose into the MatMul (FusedMatMul with transB), so the input is
 *   not copied. This suits large maps with few channels, as in the first blocks.
 * - one Gemm over all pixels of the batch: gY and X are transposed to [M, N*H*W] and [C, N*H*W], which
 *   copies them once, and a single Gemm sums over images and pixels together. This suits small maps
 *   with many channels, as in the last blocks, where the per-image products are much larger than the
 *   activations.
 * The rule picks the Gemm when 4*M*C >= (M + C)*H*W; on MobileNetV2 at batch 32 (2 threads) this
 * chose the faster form for every layer measured, and the Gemm was up to 3x faster on 7x7 maps.
 */
function pointwiseWeightGradient(builder: GraphBuilder, setup: ConvolutionSetup): string {
  const [batch, channels, height, width] = setup.inputShape;
  const outputChannels = setup.weightShape[0];
  const pixels = height * width;
  if (4 * outputChannels * channels >= (outputChannels + channels) * pixels) {
    return pointwiseWeightGradientByGemm(builder, setup);
  }

  const gradientRows = builder.reshape(setup.gradient, [batch, outputChannels, pixels]);
  const inputRows = builder.reshape(setup.input, [batch, channels, pixels]);
  const inputColumns = builder.transpose(inputRows, [0, 2, 1]);
  const products = builder.add('MatMul', [gradientRows, inputColumns], {}, { hint: `${setup.weight}_grad_per_image` });

  const summed = batch === 1 ? products : builder.reduceSum(products, [0], false);
  return builder.reshape(summed, [outputChannels, channels, 1, 1]);
}

/** Builds the single-Gemm form of pointwiseWeightGradient: gW = gY as [M, N*H*W] times (X as [C, N*H*W])ᵀ. */
function pointwiseWeightGradientByGemm(builder: GraphBuilder, setup: ConvolutionSetup): string {
  const [batch, channels, height, width] = setup.inputShape;
  const outputChannels = setup.weightShape[0];
  const pixels = height * width;

  const gradientRows = builder.reshape(setup.gradient, [batch, outputChannels, pixels]);
  const gradientByChannel = builder.reshape(builder.transpose(gradientRows, [1, 0, 2]), [outputChannels, -1]);

  const inputRows = builder.reshape(setup.input, [batch, channels, pixels]);
  const inputByChannel = builder.reshape(builder.transpose(inputRows, [1, 0, 2]), [channels, -1]);

  const product = builder.add('Gemm', [gradientByChannel, inputByChannel], { transB: 1 }, { hint: `${setup.weight}_grad_all_pixels` });
  return builder.reshape(product, [outputChannels, channels, 1, 1]);
}

/**
 * Returns a function that builds an im2col of a tensor shaped like the Conv input, for the window
 * geometry of `setup`: a grouped Conv whose constant one-hot kernel [C*K, 1, kh, kw] copies each of
 * the K = kh*kw taps of every window into its own channel, giving patches [N, C*K, Ho, Wo]. All calls
 * share one kernel initializer.
 */
function oneHotIm2col(builder: GraphBuilder, setup: ConvolutionSetup): (input: string) => string {
  const channels = setup.inputShape[1];
  const { kernel, strides, padsBegin, padsEnd } = setup.geometry;
  const taps = kernel[0] * kernel[1];
  const oneHot = new Float32Array(channels * taps * taps);
  for (let channel = 0; channel < channels; channel++) {
    for (let tap = 0; tap < taps; tap++) {
      oneHot[(channel * taps + tap) * taps + tap] = 1;
    }
  }
  const oneHotKernel = builder.constantFloat(oneHot, [channels * taps, 1, kernel[0], kernel[1]], 'im2col_kernel');
  return (input) =>
    builder.add(
      'Conv',
      [input, oneHotKernel],
      { group: channels, kernel_shape: kernel, strides, pads: [...padsBegin, ...padsEnd] },
      { hint: `${setup.input}_im2col` },
    );
}

/**
 * Gradient of a depthwise Conv weight (group = C = M) from the patches P of oneHotIm2col: a batched
 * MatMul with gY and a ReduceSum over the batch give gW[c, k] = sum over n and pixels p of
 * P[n, c, k, p] * gY[n, c, p]. The patches take K times the memory of the output, but this
 * measured faster than batchAsChannelsWeightGradient for depthwise layers.
 */
function depthwiseIm2colWeightGradient(builder: GraphBuilder, setup: ConvolutionSetup): string {
  const [batch, channels] = setup.inputShape;
  const [, , kernelHeight, kernelWidth] = setup.weightShape;
  const taps = kernelHeight * kernelWidth;
  const pixels = setup.geometry.outputSize[0] * setup.geometry.outputSize[1];

  const im2col = oneHotIm2col(builder, setup);
  const weightGradientOf = (input: string, gradient: string, images: number): string => {
    const patchRows = builder.reshape(im2col(input), [images, channels, taps, pixels]);
    const gradientColumn = builder.reshape(gradient, [images, channels, pixels, 1]);
    return builder.add('MatMul', [patchRows, gradientColumn], {}, { hint: `${setup.weight}_grad_per_image` });
  };

  // With a static batch and depthwiseImagesPerChunk > 0, each chunk of images gets its own im2col and
  // MatMul, so only one chunk's patches are in memory at a time. Alone this measured about 25% faster,
  // but in the whole MobileNetV2 graph the extra nodes made steps slower, so it is off by default.
  const chunkImages = convolutionFormulations.depthwiseImagesPerChunk;
  let summed: string;
  if (batch > 1 && chunkImages > 0 && chunkImages < batch) {
    const chunkSizes: number[] = [];
    for (let start = 0; start < batch; start += chunkImages) {
      chunkSizes.push(Math.min(chunkImages, batch - start));
    }
    const splitSizes = builder.constantInt64(chunkSizes);
    const inputChunks = builder.addWithOutputs('Split', [setup.input, splitSizes], { axis: 0 }, { outputCount: chunkSizes.length, hint: `${setup.input}_chunk` });
    const gradientChunks = builder.addWithOutputs('Split', [setup.gradient, splitSizes], { axis: 0 }, { outputCount: chunkSizes.length, hint: `${setup.gradient}_chunk` });
    const partials = chunkSizes.map((images, index) => {
      const product = weightGradientOf(inputChunks[index], gradientChunks[index], images);
      return images === 1 ? product : builder.reduceSum(product, [0], true);
    });
    summed = builder.add('Sum', partials, {}, { hint: `${setup.weight}_grad_sum` });
  } else {
    const products = weightGradientOf(setup.input, setup.gradient, batch);
    summed = batch === 1 ? products : builder.reduceSum(products, [0], false);
  }
  return builder.reshape(summed, [channels, 1, kernelHeight, kernelWidth]);
}

/**
 * Gradient of a depthwise Conv weight through each channel's convolution matrix M [P, Q] (see
 * depthwiseLowering.ts): gM[c] = X[c]ᵀ gY[c] over the batch is one batched MatMul of [C, P, N] by
 * [C, N, Q], and gW [C, K] = gM [C, P*Q] times the tap map S [K, P*Q] transposed. This does P*Q
 * multiply-adds per image and channel instead of K*Q, but as a few large GEMMs it beats the im2col
 * on small maps.
 */
function depthwiseMatrixWeightGradient(builder: GraphBuilder, setup: ConvolutionSetup): string {
  const [batch, channels] = setup.inputShape;
  const [, , kernelHeight, kernelWidth] = setup.weightShape;
  const { geometry } = setup;
  const inputPixels = geometry.inputSize[0] * geometry.inputSize[1];
  const outputPixels = geometry.outputSize[0] * geometry.outputSize[1];

  const inputRows = builder.reshape(setup.input, [batch, channels, inputPixels]);
  const inputColumns = builder.transpose(inputRows, [1, 2, 0], `${setup.input}_pixels_by_image`);
  const gradientRows = builder.reshape(setup.gradient, [batch, channels, outputPixels]);
  const gradientByChannel = builder.transpose(gradientRows, [1, 0, 2], `${setup.gradient}_by_channel`);
  const matrixGradient = builder.add('MatMul', [inputColumns, gradientByChannel], {}, { hint: `${setup.weight}_matrix_grad` });

  const matrixRows = builder.reshape(matrixGradient, [channels, inputPixels * outputPixels]);
  const tapMap = builder.constantFloat(tapsToMatrix(geometry), [kernelHeight * kernelWidth, inputPixels * outputPixels], `${setup.weight}_taps_to_matrix`);
  const tapGradient = builder.add('Gemm', [matrixRows, tapMap], { transB: 1 }, { hint: `${setup.weight}_grad_taps` });
  return builder.reshape(tapGradient, [channels, 1, kernelHeight, kernelWidth]);
}

/**
 * Gradient of a group-1 Conv weight with few input channels, such as a stem convolution on RGB
 * images: with the patches P [N, C*K, Ho*Wo] of oneHotIm2col, gW [M, C*K] is the sum over images of
 * gY[n] [M, Ho*Wo] times P[n]ᵀ, one well-shaped GEMM per image.
 */
function smallInputIm2colWeightGradient(builder: GraphBuilder, setup: ConvolutionSetup): string {
  const [batch, channels] = setup.inputShape;
  const [outputChannels, , kernelHeight, kernelWidth] = setup.weightShape;
  const taps = kernelHeight * kernelWidth;
  const pixels = setup.geometry.outputSize[0] * setup.geometry.outputSize[1];

  const patchRows = builder.reshape(oneHotIm2col(builder, setup)(setup.input), [batch, channels * taps, pixels]);
  const patchColumns = builder.transpose(patchRows, [0, 2, 1]);
  const gradientRows = builder.reshape(setup.gradient, [batch, outputChannels, pixels]);
  const products = builder.add('MatMul', [gradientRows, patchColumns], {}, { hint: `${setup.weight}_grad_per_image` });
  const summed = batch === 1 ? products : builder.reduceSum(products, [0], false);
  return builder.reshape(summed, [outputChannels, channels, kernelHeight, kernelWidth]);
}

/** Largest C*kh*kw for which a group-1 Conv weight gradient uses smallInputIm2colWeightGradient. */
const SMALL_IM2COL_ROWS = 64;

/**
 * Formulations that benchmarks can switch; the defaults are the fastest measured ones.
 *
 * NOTE: depthwise layers take about half of a full MobileNetV2 training step, which is why full
 * fine-tuning stays slower than PyTorch on 2 x86 cores. onnxruntime 1.31 reorders a Conv into its
 * fast blocked (NCHWc) layout only when the weight is a constant initializer. The NchwcTransformer
 * checks this, and the weights of a training graph are inputs. Its direct depthwise kernel is
 * compiled only for WebAssembly and ARM64. So a depthwise Conv here runs as an im2col and a one-row
 * GEMM per image and channel. On small maps, batched MatMuls with each channel's convolution matrix
 * do better (depthwiseLowering.ts and depthwiseMatrixWeightGradient). On 2 cores at batch 32, these
 * measured no faster: slices with Mul and ReduceSum, block-diagonal grouped convolutions, zero
 * insertion or a phase split with DepthToSpace instead of ConvTranspose, im2col over a [N*C, 1, H, W]
 * view. Separate row and column shifts instead of the nine-tap im2col saved 0.3 ms/image on the one
 * 112x112 stride-1 layer and nothing elsewhere, too little for another formulation.
 */
export const convolutionFormulations = {
  depthwiseWeightGradient: 'im2col' as 'im2col' | 'batchAsChannels',
  /**
   * Largest product of input and output pixels, per image of the batch, for which a depthwise weight
   * gradient goes through the convolution matrix (depthwiseMatrixWeightGradient) instead of the
   * im2col. Its matrix gradient costs the same for any batch, so small batches do not pay it back.
   * On 2 cores a 14x14 map with 576 channels (38416 entries) measured 30 % faster at batch 32, no
   * faster at 16 and twice as slow at 8. 0 turns it off, and it is off when the batch is unknown.
   */
  depthwiseMatrixMaxEntriesPerImage: 1536,
  /** Images per im2col chunk in depthwise weight gradients with a static batch; 0 means the whole batch. */
  depthwiseImagesPerChunk: 0,
};

/**
 * Gradient of a Conv weight as another convolution that treats the batch as channels:
 * gW[m, c, i, j] = sum over n, y, x of gY[n, m, y, x] * Xpadded[n, c, y*s + i, x*s + j], which is a
 * grouped Conv of X rearranged to [C/g, g*N, H, W] with gY rearranged to [M, N, Ho, Wo] as kernel and
 * the forward stride as dilation.
 */
function batchAsChannelsWeightGradient(builder: GraphBuilder, setup: ConvolutionSetup): string {
  const [batch, channels, height, width] = setup.inputShape;
  const [outputChannels, groupInputChannels, kernelHeight, kernelWidth] = setup.weightShape;
  const group = setup.group;
  const { strides, padsBegin, padsEnd, outputSize } = setup.geometry;

  let rearrangedInput: string;
  if (group === 1) {
    rearrangedInput = builder.transpose(setup.input, [1, 0, 2, 3]);
  } else {
    const grouped = builder.reshape(setup.input, [batch, group, groupInputChannels, height, width]);
    const swapped = builder.transpose(grouped, [2, 1, 0, 3, 4]);
    rearrangedInput = builder.reshape(swapped, [groupInputChannels, batch < 0 ? -1 : group * batch, height, width]);
  }
  const gradientKernel = builder.transpose(setup.gradient, [1, 0, 2, 3]);

  const correlation = builder.add(
    'Conv',
    [rearrangedInput, gradientKernel],
    { group, dilations: strides, pads: [...padsBegin, ...padsEnd], kernel_shape: outputSize },
    { hint: `${setup.weight}_grad` },
  );

  // Rows past the last forward window come out too, so crop to the kernel size.
  const resultHeight = height + padsBegin[0] + padsEnd[0] - (outputSize[0] - 1) * strides[0];
  const resultWidth = width + padsBegin[1] + padsEnd[1] - (outputSize[1] - 1) * strides[1];
  let cropped = correlation;
  if (resultHeight !== kernelHeight || resultWidth !== kernelWidth) {
    const starts = builder.constantInt64([0, 0]);
    const ends = builder.constantInt64([kernelHeight, kernelWidth]);
    const axes = builder.constantInt64([2, 3]);
    cropped = builder.add('Slice', [correlation, starts, ends, axes]);
  }
  const result = builder.transpose(cropped, [1, 0, 2, 3], `${setup.weight}_grad`);
  builder.setShape(result, [outputChannels, groupInputChannels, kernelHeight, kernelWidth]);
  return result;
}

function convolutionSetup(context: GradientContext, gradient: string): ConvolutionSetup {
  const { node, builder } = context;
  const [input, weight] = node.input ?? [];
  const inputShape = builder.shape(input);
  const weightShape = builder.shape(weight);
  if (inputShape.length !== 4) {
    throw new UnsupportedGradientError(`${describeNode(node)}: only 2-D convolutions have a gradient rule, but the input has rank ${inputShape.length}`);
  }
  const geometry = windowGeometry(node, inputShape.slice(2), weightShape.slice(2));
  if (geometry.dilations.some((dilation) => dilation !== 1)) {
    throw new UnsupportedGradientError(`${describeNode(node)}: Conv gradients support only dilations 1, got [${geometry.dilations.join(', ')}]`);
  }
  if (inputShape.slice(1).some((dim) => dim < 0)) {
    throw new UnsupportedGradientError(`${describeNode(node)}: Conv gradients need static channel and spatial sizes, got [${inputShape.join(', ')}]`);
  }
  return {
    node,
    input,
    weight,
    gradient,
    inputShape,
    weightShape,
    outputShape: builder.shape(node.output?.[0] ?? ''),
    geometry,
    group: intAttribute(node, 'group', 1),
  };
}

/** Gradient rule of Conv: input, weight and optional bias. */
export function convolutionGradient(context: GradientContext): (string | undefined)[] {
  const gradient = context.outputGradients[0];
  if (!gradient) {
    return [];
  }
  const { builder, needsGradient } = context;
  const setup = convolutionSetup(context, gradient);

  const inputGradient = needsGradient[0] ? convolutionInputGradient(builder, setup) : undefined;

  let weightGradient: string | undefined;
  if (needsGradient[1]) {
    const [outputChannels, groupInputChannels] = setup.weightShape;
    const depthwise = groupInputChannels === 1 && outputChannels === setup.group;
    if (isPointwise(setup) && setup.group === 1) {
      weightGradient = pointwiseWeightGradient(builder, setup);
    } else if (depthwise && convolutionMatrixEntries(setup.geometry) <= convolutionFormulations.depthwiseMatrixMaxEntriesPerImage * expectedImages(setup, builder)) {
      weightGradient = depthwiseMatrixWeightGradient(builder, setup);
    } else if (depthwise && convolutionFormulations.depthwiseWeightGradient === 'im2col') {
      weightGradient = depthwiseIm2colWeightGradient(builder, setup);
    } else if (setup.group === 1 && groupInputChannels * setup.geometry.kernel[0] * setup.geometry.kernel[1] <= SMALL_IM2COL_ROWS) {
      weightGradient = smallInputIm2colWeightGradient(builder, setup);
    } else {
      weightGradient = batchAsChannelsWeightGradient(builder, setup);
    }
  }

  const biasGradient = needsGradient[2] ? builder.reduceSum(gradient, [0, 2, 3], false, `${context.node.input?.[2]}_grad`) : undefined;
  return [inputGradient, weightGradient, biasGradient];
}

function poolingGeometry(context: GradientContext): { inputShape: Shape; geometry: WindowGeometry } {
  const { node, builder } = context;
  const inputShape = builder.shape(node.input?.[0] ?? '');
  if (inputShape.length !== 4 || inputShape.slice(1).some((dim) => dim < 0)) {
    throw new UnsupportedGradientError(`${describeNode(node)}: pooling gradients need a 2-D input with static channels and size, got [${inputShape.join(', ')}]`);
  }
  const geometry = windowGeometry(node, inputShape.slice(2), intsAttribute(node, 'kernel_shape', []));
  if (geometry.dilations.some((dilation) => dilation !== 1)) {
    throw new UnsupportedGradientError(`${describeNode(node)}: pooling gradients support only dilations 1`);
  }
  return { inputShape, geometry };
}

/**
 * Gradient rule of MaxPool: a second MaxPool returns the flat index of each window's maximum, and
 * ScatterElements adds the output gradient at those indices (windows may overlap).
 */
export function maxPoolGradient(context: GradientContext): (string | undefined)[] {
  const gradient = context.outputGradients[0];
  if (!gradient || !context.needsGradient[0]) {
    return [];
  }
  const { node, builder } = context;
  const input = node.input?.[0] ?? '';
  const { inputShape } = poolingGeometry(context);
  if (intAttribute(node, 'storage_order', 0) !== 0) {
    throw new UnsupportedGradientError(`${describeNode(node)}: MaxPool gradients support only storage_order 0`);
  }

  const [, indices] = builder.addWithOutputs('MaxPool', [input], {}, { outputCount: 2, hint: `${input}_argmax`, copyAttributesFrom: node });

  const flatIndices = builder.reshape(indices, [-1]);
  const flatGradient = builder.reshape(gradient, [-1]);
  // ConstantOfShape fills float32 zeros by default; a zero initializer of the input's size would bloat the model.
  const size = inputShape[0] > 0 ? builder.constantInt64([inputShape.reduce((product, dim) => product * dim, 1)]) : builder.reshape(builder.add('Size', [input]), [1]);
  const zeros = builder.add('ConstantOfShape', [size], {}, { hint: `${input}_zeros` });
  const scattered = builder.add('ScatterElements', [zeros, flatIndices, flatGradient], { axis: 0, reduction: 'add' });
  return [builder.reshape(scattered, inputShape, input)];
}

/**
 * Number of input (count_include_pad 0) or padded-input (count_include_pad 1) positions that each
 * AveragePool window covers, for one spatial axis.
 */
function windowCounts(geometry: WindowGeometry, axis: number, includePadding: boolean): number[] {
  const counts: number[] = [];
  for (let output = 0; output < geometry.outputSize[axis]; output++) {
    const start = output * geometry.strides[axis] - geometry.padsBegin[axis];
    const end = start + geometry.kernel[axis];
    const low = includePadding ? -geometry.padsBegin[axis] : 0;
    const high = includePadding ? geometry.inputSize[axis] + geometry.padsEnd[axis] : geometry.inputSize[axis];
    counts.push(Math.min(end, high) - Math.max(start, low));
  }
  return counts;
}

/**
 * Gradient rule of AveragePool: the output gradient divided by each window's element count, spread
 * back over the window by a grouped ConvTranspose with a kernel of ones.
 */
export function averagePoolGradient(context: GradientContext): (string | undefined)[] {
  const gradient = context.outputGradients[0];
  if (!gradient || !context.needsGradient[0]) {
    return [];
  }
  const { node, builder } = context;
  const { inputShape, geometry } = poolingGeometry(context);
  const includePadding = intAttribute(node, 'count_include_pad', 0) === 1;
  const channels = inputShape[1];
  const [outputHeight, outputWidth] = geometry.outputSize;

  const rowCounts = windowCounts(geometry, 0, includePadding);
  const columnCounts = windowCounts(geometry, 1, includePadding);
  const reciprocal = new Float32Array(outputHeight * outputWidth);
  for (let row = 0; row < outputHeight; row++) {
    for (let column = 0; column < outputWidth; column++) {
      reciprocal[row * outputWidth + column] = 1 / (rowCounts[row] * columnCounts[column]);
    }
  }
  const scaled = builder.add('Mul', [gradient, builder.constantFloat(reciprocal, [1, 1, outputHeight, outputWidth], 'window_reciprocal')]);

  const [kernelHeight, kernelWidth] = geometry.kernel;
  const ones = builder.constantFloat(new Float32Array(channels * kernelHeight * kernelWidth).fill(1), [channels, 1, kernelHeight, kernelWidth], 'ones_kernel');
  const padsEnd = [...geometry.padsEnd];
  const outputPadding = geometry.inputSize.map((size, axis) => {
    const padding = size + geometry.padsBegin[axis] + padsEnd[axis] - geometry.kernel[axis] - geometry.strides[axis] * (geometry.outputSize[axis] - 1);
    // With ceil_mode the last window can reach past the end padding; crop that part instead.
    if (padding < 0) {
      padsEnd[axis] -= padding;
      return 0;
    }
    return padding;
  });
  const spread = builder.add('ConvTranspose', [scaled, ones], {
    group: channels,
    kernel_shape: geometry.kernel,
    strides: geometry.strides,
    pads: [...geometry.padsBegin, ...padsEnd],
    output_padding: outputPadding,
  });
  return [spread];
}
