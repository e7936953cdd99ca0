// Rewrites trainable depthwise convolutions on small feature maps as matrix products before the
// backward pass is built. onnxruntime runs a depthwise Conv whose weight is a graph input as an im2col
// and a one-row GEMM per image and channel, which is slow on small maps. A batched MatMul with each
// channel's convolution matrix does the same work in a few large GEMMs. The MatMul gradient rules then
// give fast input and weight gradients too.
import { type NodeProto, type TensorProto, intAttribute } from '../onnx/model.js';
import { makeNode } from '../onnx/graph.js';
import { GraphBuilder, type Shape } from './graphBuilder.js';
import { type WindowGeometry, windowGeometry } from './windowGeometry.js';

/**
 * Largest product of input and output pixels of a depthwise Conv that is lowered to a MatMul. The
 * convolution matrix has that many entries per channel. On 2 cores, MobileNetV2's 7x7 layers (2401)
 * ran 2 to 5 times faster as MatMuls at batches 8 to 32. Its stride-2 layer from 14x14 to 7x7 (9604)
 * ran no faster, and a stride-1 14x14 layer (38416) ran slower. 0 turns the lowering off.
 */
export const depthwiseLowering = { maxMatrixEntries: 2401 };

export interface LoweringResult {
  nodes: NodeProto[];
  /** New constant initializers: the tap-to-matrix maps and reshape targets. */
  initializers: TensorProto[];
  /** Number of Conv nodes that were rewritten. */
  lowered: number;
}

/** Returns the entries of one channel's convolution matrix: input pixels times output pixels. */
export function convolutionMatrixEntries(geometry: WindowGeometry): number {
  return geometry.inputSize[0] * geometry.inputSize[1] * geometry.outputSize[0] * geometry.outputSize[1];
}

/**
 * Returns the 0/1 matrix S [K, P * Q] that maps the K kernel taps of one channel to its convolution
 * matrix: row k has a 1 at (p, q) when input pixel p is under tap k of the window of output pixel q.
 * Taps that fall into the padding have no input pixel and leave no 1.
 */
export function tapsToMatrix(geometry: WindowGeometry): Float32Array {
  const [inputHeight, inputWidth] = geometry.inputSize;
  const [outputHeight, outputWidth] = geometry.outputSize;
  const [kernelHeight, kernelWidth] = geometry.kernel;
  const inputPixels = inputHeight * inputWidth;
  const outputPixels = outputHeight * outputWidth;
  const matrix = new Float32Array(kernelHeight * kernelWidth * inputPixels * outputPixels);

  for (let kernelRow = 0; kernelRow < kernelHeight; kernelRow++) {
    for (let kernelColumn = 0; kernelColumn < kernelWidth; kernelColumn++) {
      const tap = kernelRow * kernelWidth + kernelColumn;
      for (let outputRow = 0; outputRow < outputHeight; outputRow++) {
        const inputRow = outputRow * geometry.strides[0] - geometry.padsBegin[0] + kernelRow * geometry.dilations[0];
        if (inputRow < 0 || inputRow >= inputHeight) {
          continue;
        }
        for (let outputColumn = 0; outputColumn < outputWidth; outputColumn++) {
          const inputColumn = outputColumn * geometry.strides[1] - geometry.padsBegin[1] + kernelColumn * geometry.dilations[1];
          if (inputColumn < 0 || inputColumn >= inputWidth) {
            continue;
          }
          const inputPixel = inputRow * inputWidth + inputColumn;
          const outputPixel = outputRow * outputWidth + outputColumn;
          matrix[(tap * inputPixels + inputPixel) * outputPixels + outputPixel] = 1;
        }
      }
    }
  }
  return matrix;
}

/** Returns the geometry of `node` if it is a 2-D depthwise Conv small enough to lower, otherwise undefined. */
function lowerableGeometry(node: NodeProto, shapeOf: (name: string) => Shape | undefined): WindowGeometry | undefined {
  if (node.opType !== 'Conv' || (node.domain ?? '') !== '') {
    return undefined;
  }
  const [input, weight] = node.input ?? [];
  const inputShape = shapeOf(input);
  const weightShape = shapeOf(weight);
  if (!inputShape || !weightShape || inputShape.length !== 4 || weightShape.length !== 4) {
    return undefined;
  }
  const channels = inputShape[1];
  const group = intAttribute(node, 'group', 1);
  if (channels < 0 || group !== channels || weightShape[0] !== channels || weightShape[1] !== 1 || inputShape.slice(2).some((size) => size < 0)) {
    return undefined;
  }
  const geometry = windowGeometry(node, inputShape.slice(2), weightShape.slice(2));
  return convolutionMatrixEntries(geometry) <= depthwiseLowering.maxMatrixEntries ? geometry : undefined;
}

/**
 * Appends the MatMul form of the depthwise Conv `node` to `builder`:
 * M = reshape(W [C, K] x S [K, P*Q], [C, P, Q]), then Y[c, n, :] = X[c, n, :] x M[c] (+ B[c]), with X
 * and Y moved between [N, C, pixels] and [C, N, pixels] by Transpose. The last node writes the Conv's
 * own output name, so the nodes after it are unchanged.
 */
function appendLoweredConvolution(builder: GraphBuilder, node: NodeProto, geometry: WindowGeometry, channels: number): void {
  const [input, weight, bias] = node.input ?? [];
  const output = node.output?.[0] ?? '';
  const taps = geometry.kernel[0] * geometry.kernel[1];
  const inputPixels = geometry.inputSize[0] * geometry.inputSize[1];
  const outputPixels = geometry.outputSize[0] * geometry.outputSize[1];

  const tapMap = builder.constantFloat(tapsToMatrix(geometry), [taps, inputPixels * outputPixels], `${weight}_taps_to_matrix`);
  const weightRows = builder.reshape(weight, [channels, taps]);
  const matrixRows = builder.add('MatMul', [weightRows, tapMap], {}, { hint: `${weight}_matrix_rows` });
  const matrices = builder.reshape(matrixRows, [channels, inputPixels, outputPixels]);

  // A 0 in a Reshape target copies the input's dimension. With -1, onnxruntime's shape inference
  // would give the batch a new symbol and skip fusions such as Conv with a residual Add.
  const inputRowsShape = builder.constantInt64([0, channels, inputPixels], [3], `${input}_rows_shape`);
  const inputRows = builder.add('Reshape', [input, inputRowsShape], {}, { hint: `${input}_rows` });
  const inputByChannel = builder.transpose(inputRows, [1, 0, 2], `${input}_by_channel`);
  let outputByChannel = builder.add('MatMul', [inputByChannel, matrices], {}, { hint: `${output}_by_channel` });
  if (bias) {
    const biasColumn = builder.reshape(bias, [channels, 1, 1]);
    outputByChannel = builder.add('Add', [outputByChannel, biasColumn], {}, { hint: `${output}_with_bias` });
  }
  const outputRows = builder.transpose(outputByChannel, [1, 0, 2], `${output}_rows`);

  const outputShape = builder.constantInt64([0, channels, ...geometry.outputSize], [4], `${output}_shape`);
  builder.nodes.push(makeNode('Reshape', [outputRows, outputShape], [output], {}, builder.freshName(`${node.name || output}_lowered`)));
}

/**
 * Rewrites every depthwise Conv whose weight is in `trainable` and whose convolution matrix has at
 * most depthwiseLowering.maxMatrixEntries entries per channel. Other nodes pass through unchanged, and
 * frozen depthwise Convs keep their Conv form, because onnxruntime runs those with a fast kernel. The
 * new tensors get no recorded shapes, so callers infer shapes again on the result.
 *
 * @param nodes forward nodes in topological order
 * @param shapes static shapes of the forward tensors, from inferShapes
 * @param takenNames every name in use; the new names are added to it
 */
export function lowerSmallDepthwiseConvolutions(
  nodes: readonly NodeProto[],
  shapes: ReadonlyMap<string, Shape>,
  trainable: ReadonlySet<string>,
  takenNames: Set<string>,
): LoweringResult {
  const builder = new GraphBuilder(takenNames, shapes);
  const result: NodeProto[] = [];
  let lowered = 0;

  for (const node of nodes) {
    const weight = node.input?.[1] ?? '';
    const geometry = trainable.has(weight) ? lowerableGeometry(node, (name) => shapes.get(name)) : undefined;
    if (!geometry) {
      result.push(node);
      continue;
    }

    const start = builder.nodes.length;
    appendLoweredConvolution(builder, node, geometry, shapes.get(weight)?.[0] ?? 0);
    result.push(...builder.nodes.slice(start));
    lowered += 1;
  }

  for (const node of result) {
    for (const name of [...(node.input ?? []), ...(node.output ?? []), node.name ?? '']) {
      takenNames.add(name);
    }
  }
  for (const tensor of builder.initializers) {
    takenNames.add(tensor.name ?? '');
  }
  return { nodes: result, initializers: builder.initializers, lowered };
}
