// Static shape propagation for the operators that gradient rules support, plus common element-wise
// operators. Tensors produced by other operators get no shape; a rule that needs one then fails.
import { type NodeProto, intAttribute, intsAttribute } from '../onnx/model.js';
import { describeNode } from '../onnx/graph.js';
import type { Shape } from './graphBuilder.js';
import { windowGeometry } from './windowGeometry.js';

/** Shapes of graph inputs and initializers, plus values of the small int64 initializers. */
export interface ShapeInferenceInputs {
  shapes: ReadonlyMap<string, Shape>;
  /** Values of int64 constants that feed shape, axes or similar inputs. */
  int64Constants: ReadonlyMap<string, readonly number[]>;
}

const sameShapeOperators = new Set([
  'Relu', 'Sigmoid', 'Clip', 'Identity', 'Neg', 'Abs', 'Exp', 'Log', 'Sqrt', 'Tanh', 'Softplus', 'Cast',
  'Dropout', 'LeakyRelu', 'HardSigmoid', 'HardSwish', 'Elu', 'Reciprocal', 'Erf', 'Softmax', 'LogSoftmax',
  'BatchNormalization', 'LRN', 'Not', 'Floor', 'Ceil', 'Round', 'Sign',
]);

const broadcastOperators = new Set([
  'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum', 'Mean', 'Greater', 'Less', 'GreaterOrEqual',
  'LessOrEqual', 'Equal', 'And', 'Or', 'Xor', 'Where', 'PRelu',
]);

const reduceOperators = new Set(['ReduceMean', 'ReduceSum', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL2']);

/** Broadcasts shapes with numpy rules; -1 (unknown) against 1 stays unknown. */
export function broadcastShapes(shapes: readonly Shape[]): number[] {
  const rank = Math.max(...shapes.map((shape) => shape.length));
  const result: number[] = [];
  for (let axis = 0; axis < rank; axis++) {
    let dim = 1;
    for (const shape of shapes) {
      const offset = axis - (rank - shape.length);
      const size = offset < 0 ? 1 : shape[offset];
      if (size === 1) {
        continue;
      }
      if (dim === 1 || dim === -1) {
        dim = size === -1 && dim > 1 ? dim : size;
      } else if (size !== -1 && size !== dim) {
        throw new Error(`shapes [${shapes.map((s) => s.join(', ')).join('] and [')}] do not broadcast`);
      }
    }
    result.push(dim);
  }
  return result;
}

/** Normalizes possibly negative axes against `rank`. */
export function normalizeAxes(axes: readonly number[], rank: number): number[] {
  return axes.map((axis) => (axis < 0 ? axis + rank : axis));
}

/**
 * Returns the axes of a ReduceMean/ReduceSum/Squeeze/Unsqueeze node from its `axes` attribute or its
 * constant second input, or undefined when the node has neither.
 */
export function nodeAxes(node: NodeProto, int64Constants: ReadonlyMap<string, readonly number[]>): readonly number[] | undefined {
  const fromAttribute = (node.attribute ?? []).find((attribute) => attribute.name === 'axes');
  if (fromAttribute) {
    return intsAttribute(node, 'axes', []);
  }
  const axesInput = node.input?.[1];
  if (!axesInput) {
    return undefined;
  }
  const values = int64Constants.get(axesInput);
  if (!values) {
    throw new Error(`${describeNode(node)} takes its axes from ${axesInput}, which is not a constant initializer`);
  }
  return values;
}

function reshapeTarget(node: NodeProto, inputShape: Shape, requested: readonly number[]): number[] {
  const allowZero = intAttribute(node, 'allowzero', 0) === 1;
  const target = requested.map((dim, axis) => (dim === 0 && !allowZero ? inputShape[axis] : dim));
  const inferred = target.indexOf(-1);
  if (inferred >= 0) {
    const known = target.reduce((product, dim, axis) => (axis === inferred ? product : product * dim), 1);
    const total = inputShape.reduce((product, dim) => product * dim, 1);
    target[inferred] = inputShape.some((dim) => dim < 0) || target.some((dim, axis) => axis !== inferred && dim < 0) ? -1 : total / known;
  }
  return target;
}

function matMulShape(left: Shape, right: Shape): number[] {
  const a = left.length === 1 ? [1, left[0]] : left;
  const b = right.length === 1 ? [right[0], 1] : right;
  const batch = broadcastShapes([a.slice(0, -2), b.slice(0, -2)]);
  const shape = [...batch, a[a.length - 2], b[b.length - 1]];
  if (left.length === 1) {
    shape.splice(shape.length - 2, 1);
  }
  if (right.length === 1) {
    shape.splice(shape.length - 1, 1);
  }
  return shape;
}

/** Infers the output shapes of one node from its input shapes; returns undefined for unsupported operators. */
export function inferNodeShapes(node: NodeProto, shapeOf: (name: string) => Shape | undefined, int64Constants: ReadonlyMap<string, readonly number[]>): Shape[] | undefined {
  const inputs = node.input ?? [];
  const inputShapes = inputs.map((name) => (name ? shapeOf(name) : undefined));
  const x = inputShapes[0];
  const op = node.opType ?? '';

  if (sameShapeOperators.has(op)) {
    return x ? [x] : undefined;
  }
  if (broadcastOperators.has(op)) {
    const known = inputShapes.filter((shape): shape is Shape => shape !== undefined);
    return known.length === inputs.length ? [broadcastShapes(known)] : undefined;
  }
  if (!x) {
    return undefined;
  }
  switch (op) {
    case 'Conv': {
      const weight = inputShapes[1];
      if (!weight) {
        return undefined;
      }
      const geometry = windowGeometry(node, x.slice(2), weight.slice(2));
      return [[x[0], weight[0], ...geometry.outputSize]];
    }
    case 'MaxPool':
    case 'AveragePool': {
      const geometry = windowGeometry(node, x.slice(2), intsAttribute(node, 'kernel_shape', []));
      const shape = [x[0], x[1], ...geometry.outputSize];
      return (node.output ?? []).map(() => shape);
    }
    case 'GlobalAveragePool':
    case 'GlobalMaxPool':
      return [[x[0], x[1], ...x.slice(2).map(() => 1)]];
    case 'Flatten': {
      const axis = normalizeAxes([intAttribute(node, 'axis', 1)], x.length)[0];
      const product = (dims: Shape) => (dims.some((dim) => dim < 0) ? -1 : dims.reduce((total, dim) => total * dim, 1));
      return [[product(x.slice(0, axis)), product(x.slice(axis))]];
    }
    case 'Reshape': {
      const requested = int64Constants.get(inputs[1]);
      return requested ? [reshapeTarget(node, x, requested)] : undefined;
    }
    case 'Squeeze': {
      const axes = nodeAxes(node, int64Constants);
      const squeezed = axes ? normalizeAxes(axes, x.length) : x.flatMap((dim, axis) => (dim === 1 ? [axis] : []));
      return [x.filter((_, axis) => !squeezed.includes(axis))];
    }
    case 'Unsqueeze': {
      const axes = nodeAxes(node, int64Constants) ?? [];
      const rank = x.length + axes.length;
      const inserted = normalizeAxes(axes, rank);
      const shape: number[] = [];
      let next = 0;
      for (let axis = 0; axis < rank; axis++) {
        shape.push(inserted.includes(axis) ? 1 : x[next++]);
      }
      return [shape];
    }
    case 'Transpose': {
      const permutation = intsAttribute(node, 'perm', x.map((_, axis) => x.length - 1 - axis));
      return [permutation.map((axis) => x[axis])];
    }
    case 'Gemm': {
      const b = inputShapes[1];
      if (!b) {
        return undefined;
      }
      const rows = intAttribute(node, 'transA', 0) ? x[1] : x[0];
      const columns = intAttribute(node, 'transB', 0) ? b[0] : b[1];
      return [[rows, columns]];
    }
    case 'MatMul': {
      const b = inputShapes[1];
      return b ? [matMulShape(x, b)] : undefined;
    }
    case 'Concat': {
      if (inputShapes.some((shape) => !shape)) {
        return undefined;
      }
      const axis = normalizeAxes([intAttribute(node, 'axis', 0)], x.length)[0];
      const sizes = inputShapes.map((shape) => (shape as Shape)[axis]);
      const total = sizes.some((size) => size < 0) ? -1 : sizes.reduce((sum, size) => sum + size, 0);
      const shape = [...x];
      shape[axis] = total;
      return [shape];
    }
    default:
      break;
  }
  if (reduceOperators.has(op)) {
    const axes = nodeAxes(node, int64Constants);
    const keepDims = intAttribute(node, 'keepdims', 1) === 1;
    const reduced = axes && axes.length > 0 ? normalizeAxes(axes, x.length) : intAttribute(node, 'noop_with_empty_axes', 0) ? [] : x.map((_, axis) => axis);
    return [keepDims ? x.map((dim, axis) => (reduced.includes(axis) ? 1 : dim)) : x.filter((_, axis) => !reduced.includes(axis))];
  }
  return undefined;
}

/** Propagates static shapes through `nodes`, which must be in topological order. */
export function inferShapes(nodes: readonly NodeProto[], inputs: ShapeInferenceInputs): Map<string, Shape> {
  const shapes = new Map<string, Shape>(inputs.shapes);
  for (const node of nodes) {
    const outputShapes = inferNodeShapes(node, (name) => shapes.get(name), inputs.int64Constants);
    if (!outputShapes) {
      continue;
    }
    (node.output ?? []).forEach((output, index) => {
      if (output && outputShapes[index]) {
        shapes.set(output, outputShapes[index]);
      }
    });
  }
  return shapes;
}
