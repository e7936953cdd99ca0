// The gradient rule of every supported operator, in one table. A rule gets a forward node and the
// gradients of its outputs, appends backward nodes through the builder and returns the gradients of
// the inputs that need one.
import { intAttribute, intsAttribute } from '../onnx/model.js';
import { describeNode, findAttribute, floatAttribute } from '../onnx/graph.js';
import { averagePoolGradient, convolutionGradient, maxPoolGradient } from './convolutionGradients.js';
import { type GradientContext, type GradientRule, UnsupportedGradientError } from './gradientContext.js';
import type { GraphBuilder, Shape } from './graphBuilder.js';
import { nodeAxes, normalizeAxes } from './shapeInference.js';

const FLOAT = 1;

function inputName(context: GradientContext, index: number): string {
  return context.node.input?.[index] ?? '';
}

function outputName(context: GradientContext, index = 0): string {
  return context.node.output?.[index] ?? '';
}

/** Multiplies the output gradient by a 0/1 mask made from a boolean tensor. */
function maskGradient(builder: GraphBuilder, gradient: string, condition: string): string {
  const mask = builder.add('Cast', [condition], { to: FLOAT }, { hint: 'mask' });
  return builder.add('Mul', [gradient, mask]);
}

/** Replaces run-time dimensions by 1, which Expand broadcasts to the input's size. */
function expandTarget(builder: GraphBuilder, shape: Shape): string {
  return builder.constantInt64(shape.map((dim) => (dim < 0 ? 1 : dim)), [shape.length], 'expand_shape');
}

/** Reshapes the output gradient back to the input's shape (Flatten, Reshape, Squeeze, Unsqueeze). */
function reshapeBack(context: GradientContext): (string | undefined)[] {
  const gradient = context.outputGradients[0];
  if (!gradient || !context.needsGradient[0]) {
    return [];
  }
  const input = inputName(context, 0);
  return [context.builder.reshape(gradient, context.builder.shape(input), input)];
}

function passThrough(context: GradientContext): (string | undefined)[] {
  return [context.needsGradient[0] ? context.outputGradients[0] : undefined];
}

/** Gradient of a broadcasting binary operator, summed back to each input's shape. */
function broadcastBinary(
  context: GradientContext,
  leftGradient: (gradient: string) => string,
  rightGradient: (gradient: string) => string,
): (string | undefined)[] {
  const gradient = context.outputGradients[0];
  if (!gradient) {
    return [];
  }
  const { builder, needsGradient } = context;
  const outputShape = builder.shape(outputName(context));
  return [0, 1].map((index) => {
    if (!needsGradient[index]) {
      return undefined;
    }
    const input = inputName(context, index);
    const full = index === 0 ? leftGradient(gradient) : rightGradient(gradient);
    return builder.reduceToShape(full, outputShape, builder.shape(input), input);
  });
}

/** Gradient of ReduceMean and ReduceSum: the output gradient broadcast over the reduced axes. */
function reduceGradient(context: GradientContext, mean: boolean): (string | undefined)[] {
  const gradient = context.outputGradients[0];
  if (!gradient || !context.needsGradient[0]) {
    return [];
  }
  const { node, builder } = context;
  const input = inputName(context, 0);
  const inputShape = builder.shape(input);
  const axes = nodeAxes(node, builder.int64Constants);
  const noopWithEmptyAxes = intAttribute(node, 'noop_with_empty_axes', 0) === 1;
  if ((!axes || axes.length === 0) && noopWithEmptyAxes) {
    return [gradient];
  }
  const reduced = axes && axes.length > 0 ? normalizeAxes(axes, inputShape.length) : inputShape.map((_, axis) => axis);

  const keptShape = inputShape.map((dim, axis) => (reduced.includes(axis) ? 1 : dim));
  const kept = intAttribute(node, 'keepdims', 1) === 1 ? gradient : builder.reshape(gradient, keptShape);
  let scaled = kept;
  if (mean) {
    const count = reduced.reduce((product, axis) => product * inputShape[axis], 1);
    if (count < 0) {
      throw new UnsupportedGradientError(`${describeNode(node)}: ReduceMean over a run-time dimension has no gradient rule`);
    }
    scaled = builder.scale(kept, 1 / count);
  }
  return [builder.add('Expand', [scaled, expandTarget(builder, inputShape)], {}, { hint: `${input}_grad` })];
}

/** Bounds of a Clip node as tensor names, from its inputs (opset 11+) or attributes (before 11). */
function clipBounds(context: GradientContext): { minimum?: string; maximum?: string } {
  const { node, builder } = context;
  const bound = (index: number, attributeName: string): string | undefined => {
    const fromInput = node.input?.[index];
    if (fromInput) {
      return fromInput;
    }
    return findAttribute(node, attributeName) ? builder.scalar(floatAttribute(node, attributeName, 0), `clip_${attributeName}`) : undefined;
  };
  return { minimum: bound(1, 'min'), maximum: bound(2, 'max') };
}

function gemmGradient(context: GradientContext): (string | undefined)[] {
  const gradient = context.outputGradients[0];
  if (!gradient) {
    return [];
  }
  const { node, builder, needsGradient } = context;
  const [a, b, c] = [inputName(context, 0), inputName(context, 1), inputName(context, 2)];
  const alpha = floatAttribute(node, 'alpha', 1);
  const beta = floatAttribute(node, 'beta', 1);
  const transA = intAttribute(node, 'transA', 0);
  const transB = intAttribute(node, 'transB', 0);

  // With A' = op(A) and B' = op(B): dA' = alpha * gY * B'^T and dB' = alpha * A'^T * gY.
  let gradientA: string | undefined;
  if (needsGradient[0]) {
    gradientA = transA === 0
      ? builder.add('Gemm', [gradient, b], { alpha: { float: alpha }, transB: 1 - transB }, { hint: `${a}_grad` })
      : builder.add('Gemm', [b, gradient], { alpha: { float: alpha }, transA: transB, transB: 1 }, { hint: `${a}_grad` });
  }

  let gradientB: string | undefined;
  if (needsGradient[1]) {
    gradientB = transB === 0
      ? builder.add('Gemm', [a, gradient], { alpha: { float: alpha }, transA: 1 - transA }, { hint: `${b}_grad` })
      : builder.add('Gemm', [gradient, a], { alpha: { float: alpha }, transA: 1, transB: transA }, { hint: `${b}_grad` });
  }

  let gradientC: string | undefined;
  if (c && needsGradient[2]) {
    const scaled = builder.scale(gradient, beta);
    gradientC = builder.reduceToShape(scaled, builder.shape(outputName(context)), builder.shape(c), c);
  }
  return [gradientA, gradientB, gradientC];
}

function swapLastAxes(builder: GraphBuilder, tensor: string, rank: number): string {
  const permutation = Array.from({ length: rank }, (_, axis) => axis);
  [permutation[rank - 2], permutation[rank - 1]] = [permutation[rank - 1], permutation[rank - 2]];
  return builder.transpose(tensor, permutation);
}

function matMulGradient(context: GradientContext): (string | undefined)[] {
  const gradient = context.outputGradients[0];
  if (!gradient) {
    return [];
  }
  const { builder, needsGradient } = context;
  const [a, b] = [inputName(context, 0), inputName(context, 1)];
  const [shapeA, shapeB] = [builder.shape(a), builder.shape(b)];

  // Vectors take part as [1, k] rows and [k, 1] columns, as numpy's matmul defines.
  const matrixShapeA = shapeA.length === 1 ? [1, shapeA[0]] : shapeA;
  const matrixShapeB = shapeB.length === 1 ? [shapeB[0], 1] : shapeB;
  const matrixA = shapeA.length === 1 ? builder.reshape(a, matrixShapeA) : a;
  const matrixB = shapeB.length === 1 ? builder.reshape(b, matrixShapeB) : b;
  const batchShape = builder.shape(outputName(context)).slice(0, -2 + (shapeA.length === 1 ? 1 : 0) + (shapeB.length === 1 ? 1 : 0));
  const matrixOutputShape = [...batchShape, matrixShapeA[matrixShapeA.length - 2], matrixShapeB[matrixShapeB.length - 1]];
  const matrixGradient = shapeA.length === 1 || shapeB.length === 1 ? builder.reshape(gradient, matrixOutputShape) : gradient;

  let gradientA: string | undefined;
  if (needsGradient[0]) {
    const full = builder.add('MatMul', [matrixGradient, swapLastAxes(builder, matrixB, matrixShapeB.length)], {}, { hint: `${a}_grad` });
    gradientA = builder.reduceToShape(full, [...batchShape, ...matrixShapeA.slice(-2)], matrixShapeA, a);
    if (shapeA.length === 1) {
      gradientA = builder.reshape(gradientA, shapeA);
    }
  }

  let gradientB: string | undefined;
  if (needsGradient[1]) {
    const full = builder.add('MatMul', [swapLastAxes(builder, matrixA, matrixShapeA.length), matrixGradient], {}, { hint: `${b}_grad` });
    gradientB = builder.reduceToShape(full, [...batchShape, ...matrixShapeB.slice(-2)], matrixShapeB, b);
    if (shapeB.length === 1) {
      gradientB = builder.reshape(gradientB, shapeB);
    }
  }
  return [gradientA, gradientB];
}

/** Gradient of BatchNormalization in inference mode, where mean and variance are inputs. */
function batchNormalizationGradient(context: GradientContext): (string | undefined)[] {
  const gradient = context.outputGradients[0];
  if (!gradient) {
    return [];
  }
  const { node, builder, needsGradient } = context;
  if (intAttribute(node, 'training_mode', 0) !== 0 || (node.output ?? []).filter(Boolean).length > 1) {
    throw new UnsupportedGradientError(`${describeNode(node)}: only inference-mode BatchNormalization (one output) has a gradient rule`);
  }
  const [x, scale, , mean, variance] = [0, 1, 2, 3, 4].map((index) => inputName(context, index));
  const inputShape = builder.shape(x);
  const channels = inputShape[1];
  const channelShape = inputShape.map((_, axis) => (axis === 1 ? channels : 1));
  const otherAxes = inputShape.map((_, axis) => axis).filter((axis) => axis !== 1);

  // inverseDeviation = 1 / sqrt(variance + epsilon), per channel.
  const epsilon = builder.scalar(floatAttribute(node, 'epsilon', 1e-5), 'epsilon');
  const deviation = builder.add('Sqrt', [builder.add('Add', [variance, epsilon])]);
  const inverseDeviation = builder.add('Reciprocal', [deviation], {}, { hint: 'inverse_deviation' });
  const channelInverse = builder.reshape(inverseDeviation, channelShape);
  const centered = () => builder.add('Sub', [x, builder.reshape(mean, channelShape)]);
  const gradientSum = () => builder.reduceSum(gradient, otherAxes, false);

  const results: (string | undefined)[] = [undefined, undefined, undefined, undefined, undefined];
  if (needsGradient[0]) {
    const factor = builder.add('Mul', [builder.reshape(scale, channelShape), channelInverse]);
    results[0] = builder.add('Mul', [gradient, factor], {}, { hint: `${x}_grad` });
  }
  if (needsGradient[1]) {
    const normalized = builder.add('Mul', [centered(), channelInverse]);
    results[1] = builder.reduceSum(builder.add('Mul', [gradient, normalized]), otherAxes, false, `${scale}_grad`);
  }
  if (needsGradient[2]) {
    results[2] = gradientSum();
  }
  if (needsGradient[3]) {
    const perChannel = builder.add('Mul', [scale, inverseDeviation]);
    results[3] = builder.add('Neg', [builder.add('Mul', [gradientSum(), perChannel])], {}, { hint: `${mean}_grad` });
  }
  if (needsGradient[4]) {
    // d/dvariance of (x - mean) * scale * (variance + epsilon)^(-1/2) = -0.5 * (x - mean) * scale * inverseDeviation^3.
    const projected = builder.reduceSum(builder.add('Mul', [gradient, centered()]), otherAxes, false);
    const cubed = builder.add('Mul', [inverseDeviation, builder.add('Mul', [inverseDeviation, inverseDeviation])]);
    const perChannel = builder.scale(builder.add('Mul', [scale, cubed]), -0.5);
    results[4] = builder.add('Mul', [projected, perChannel], {}, { hint: `${variance}_grad` });
  }
  return results;
}

function concatGradient(context: GradientContext): (string | undefined)[] {
  const gradient = context.outputGradients[0];
  if (!gradient) {
    return [];
  }
  const { node, builder, needsGradient } = context;
  const inputs = node.input ?? [];
  const rank = builder.shape(inputs[0]).length;
  const axis = normalizeAxes([intAttribute(node, 'axis', 0)], rank)[0];
  const axes = builder.constantInt64([axis]);
  let offset = 0;
  return inputs.map((input, index) => {
    const size = builder.shape(input)[axis];
    if (size < 0) {
      throw new UnsupportedGradientError(`${describeNode(node)}: Concat gradients need static sizes along axis ${axis}`);
    }
    const start = offset;
    offset += size;
    if (!needsGradient[index]) {
      return undefined;
    }
    return builder.add('Slice', [gradient, builder.constantInt64([start]), builder.constantInt64([start + size]), axes], {}, { hint: `${input}_grad` });
  });
}

/** Gradient rules by ONNX operator type (default domain). */
export const gradientRules: Record<string, GradientRule> = {
  Conv: convolutionGradient,

  MaxPool: maxPoolGradient,

  AveragePool: averagePoolGradient,

  Gemm: gemmGradient,

  MatMul: matMulGradient,

  BatchNormalization: batchNormalizationGradient,

  Concat: concatGradient,

  Add: (context) => broadcastBinary(context, (gradient) => gradient, (gradient) => gradient),

  Sub: (context) => broadcastBinary(context, (gradient) => gradient, (gradient) => context.builder.add('Neg', [gradient])),

  Mul: (context) => {
    const { builder } = context;
    return broadcastBinary(
      context,
      (gradient) => builder.add('Mul', [gradient, inputName(context, 1)]),
      (gradient) => builder.add('Mul', [gradient, inputName(context, 0)]),
    );
  },

  Div: (context) => {
    const { builder } = context;
    const denominator = inputName(context, 1);
    return broadcastBinary(
      context,
      (gradient) => builder.add('Div', [gradient, denominator]),
      // d(a / b)/db = -(a / b) / b = -y / b.
      (gradient) => builder.add('Neg', [builder.add('Div', [builder.add('Mul', [gradient, outputName(context)]), denominator])]),
    );
  },

  Neg: (context) => [context.needsGradient[0] && context.outputGradients[0] ? context.builder.add('Neg', [context.outputGradients[0]]) : undefined],

  Identity: passThrough,

  // Dropout in an inference graph passes its input through unchanged.
  Dropout: passThrough,

  Relu: (context) => {
    const gradient = context.outputGradients[0];
    if (!gradient || !context.needsGradient[0]) {
      return [];
    }
    const { builder } = context;
    const positive = builder.add('Greater', [outputName(context), builder.scalar(0)]);
    return [maskGradient(builder, gradient, positive)];
  },

  LeakyRelu: (context) => {
    const gradient = context.outputGradients[0];
    if (!gradient || !context.needsGradient[0]) {
      return [];
    }
    const { builder } = context;
    const alpha = floatAttribute(context.node, 'alpha', 0.01);
    // slope = alpha + (1 - alpha) * [x > 0]
    const positive = builder.add('Cast', [builder.add('Greater', [inputName(context, 0), builder.scalar(0)])], { to: FLOAT });
    const slope = builder.add('Add', [builder.scale(positive, 1 - alpha), builder.scalar(alpha)]);
    return [builder.add('Mul', [gradient, slope])];
  },

  Clip: (context) => {
    const gradient = context.outputGradients[0];
    if (!gradient || !context.needsGradient[0]) {
      return [];
    }
    const { builder } = context;
    const output = outputName(context);
    const { minimum, maximum } = clipBounds(context);

    // The input lies strictly inside (min, max) exactly where the output does. Reading the output
    // lets ORT free the input after the forward pass.
    const conditions: string[] = [];
    if (minimum) {
      conditions.push(builder.add('Greater', [output, minimum]));
    }
    if (maximum) {
      conditions.push(builder.add('Less', [output, maximum]));
    }
    if (conditions.length === 0) {
      return [gradient];
    }
    const inside = conditions.length === 2 ? builder.add('And', conditions) : conditions[0];
    return [maskGradient(builder, gradient, inside)];
  },

  Sigmoid: (context) => {
    const gradient = context.outputGradients[0];
    if (!gradient || !context.needsGradient[0]) {
      return [];
    }
    const { builder } = context;
    const output = outputName(context);

    // dy/dx = y * (1 - y)
    const complement = builder.add('Sub', [builder.scalar(1), output]);
    const derivative = builder.add('Mul', [output, complement]);
    return [builder.add('Mul', [gradient, derivative])];
  },

  Tanh: (context) => {
    const gradient = context.outputGradients[0];
    if (!gradient || !context.needsGradient[0]) {
      return [];
    }
    const { builder } = context;
    const output = outputName(context);

    // dy/dx = 1 - y^2
    const squared = builder.add('Mul', [output, output]);
    const derivative = builder.add('Sub', [builder.scalar(1), squared]);
    return [builder.add('Mul', [gradient, derivative])];
  },

  HardSigmoid: (context) => {
    const gradient = context.outputGradients[0];
    if (!gradient || !context.needsGradient[0]) {
      return [];
    }
    const { builder } = context;
    const output = outputName(context);
    const alpha = floatAttribute(context.node, 'alpha', 0.2);

    // y = max(0, min(1, alpha * x + beta)), so dy/dx = alpha where 0 < y < 1.
    const inside = builder.add('And', [builder.add('Greater', [output, builder.scalar(0)]), builder.add('Less', [output, builder.scalar(1)])]);
    return [builder.scale(maskGradient(builder, gradient, inside), alpha)];
  },

  HardSwish: (context) => {
    const gradient = context.outputGradients[0];
    if (!gradient || !context.needsGradient[0]) {
      return [];
    }
    const { builder } = context;
    const input = inputName(context, 0);

    // y = x * clip(x / 6 + 1/2, 0, 1), so dy/dx = x / 3 + 1/2 for -3 < x < 3, 1 for x >= 3 and 0 below.
    const inside = builder.add('And', [builder.add('Greater', [input, builder.scalar(-3)]), builder.add('Less', [input, builder.scalar(3)])]);
    const insideMask = builder.add('Cast', [inside], { to: FLOAT });
    const insideSlope = builder.add('Add', [builder.scale(input, 1 / 3), builder.scalar(0.5)]);
    const aboveMask = builder.add('Cast', [builder.add('GreaterOrEqual', [input, builder.scalar(3)])], { to: FLOAT });
    const derivative = builder.add('Add', [builder.add('Mul', [insideMask, insideSlope]), aboveMask]);
    return [builder.add('Mul', [gradient, derivative])];
  },

  GlobalAveragePool: (context) => {
    const gradient = context.outputGradients[0];
    if (!gradient || !context.needsGradient[0]) {
      return [];
    }
    const { builder } = context;
    const input = inputName(context, 0);
    const inputShape = builder.shape(input);
    const spatial = inputShape.slice(2).reduce((product, dim) => product * dim, 1);
    if (spatial < 0) {
      throw new UnsupportedGradientError(`${describeNode(context.node)}: GlobalAveragePool gradients need a static spatial size`);
    }

    const scaled = builder.scale(gradient, 1 / spatial);
    return [builder.add('Expand', [scaled, expandTarget(builder, inputShape)], {}, { hint: `${input}_grad` })];
  },

  ReduceMean: (context) => reduceGradient(context, true),

  ReduceSum: (context) => reduceGradient(context, false),

  Flatten: reshapeBack,

  Reshape: reshapeBack,

  Squeeze: reshapeBack,

  Unsqueeze: reshapeBack,

  Transpose: (context) => {
    const gradient = context.outputGradients[0];
    if (!gradient || !context.needsGradient[0]) {
      return [];
    }
    const rank = context.builder.shape(inputName(context, 0)).length;
    const permutation = intsAttribute(context.node, 'perm', Array.from({ length: rank }, (_, axis) => rank - 1 - axis));
    const inverse = new Array<number>(rank);
    permutation.forEach((axis, index) => {
      inverse[axis] = index;
    });
    return [context.builder.transpose(gradient, inverse)];
  },
};

/** Throws the error for a node that has no gradient rule, naming its operator type and node name. */
export function unsupportedOperator(context: Pick<GradientContext, 'node'>): never {
  const { node } = context;
  const domain = node.domain ? `${node.domain}.` : '';
  throw new UnsupportedGradientError(
    `no gradient rule for operator ${domain}${node.opType} (node ${node.name || `with output ${node.output?.[0]}`}), which lies between a trainable parameter and the logits; freeze the parameters before it or replace the operator`,
  );
}
