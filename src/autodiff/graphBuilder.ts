// A small helper that appends nodes and constant initializers to a graph under construction, hands
// out unique tensor names and records the static shapes of forward tensors and of new nodes.
import { type NodeProto, type TensorProto, float32Tensor, int64Tensor } from '../onnx/model.js';
import { type AttributeValue, makeNode } from '../onnx/graph.js';

/** Static shape of a tensor; -1 marks a dimension only known at run time, such as a dynamic batch. */
export type Shape = readonly number[];

/** Options of GraphBuilder.add. */
export interface AddOptions {
  /** Number of outputs the node has; default 1. */
  outputCount?: number;
  /** Prefix of the generated output names. */
  hint?: string;
  /** Shape of the first output, if the caller knows it and later steps need it. */
  shape?: Shape;
  /** Node whose attributes the new node copies before `attributes` are added. */
  copyAttributesFrom?: NodeProto;
}

export class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  /**
   * Images per run that formulation choices assume: the static batch size, or for a dynamic batch the
   * size callers usually run, such as the micro-batch size. Undefined when unknown.
   */
  expectedBatchSize: number | undefined;
  private readonly names = new Set<string>();
  private readonly shapes: Map<string, Shape>;
  private readonly constantValues = new Map<string, readonly number[]>();
  private nodeCounter = 0;

  /**
   * @param takenNames every tensor and node name already used in the graph
   * @param shapes static shapes of the existing tensors, usually from inferShapes
   * @param constants values of existing small constant initializers, usually int64 shape and axes inputs
   */
  constructor(
    takenNames: Iterable<string>,
    shapes: ReadonlyMap<string, Shape>,
    constants: ReadonlyMap<string, readonly number[]> = new Map(),
  ) {
    for (const name of takenNames) {
      this.names.add(name);
    }
    this.shapes = new Map(shapes);
    for (const [name, values] of constants) {
      this.constantValues.set(name, values);
    }
  }

  /** Returns a tensor name that starts with `hint` and is not used anywhere in the graph yet. */
  freshName(hint: string): string {
    let name = hint;
    for (let suffix = 1; this.names.has(name); suffix++) {
      name = `${hint}_${suffix}`;
    }
    this.names.add(name);
    return name;
  }

  /** Appends a node and returns the name of its first output. */
  add(opType: string, inputs: readonly string[], attributes: Readonly<Record<string, AttributeValue>> = {}, options: AddOptions = {}): string {
    return this.addWithOutputs(opType, inputs, attributes, options)[0];
  }

  /** Appends a node and returns the names of all its outputs. */
  addWithOutputs(
    opType: string,
    inputs: readonly string[],
    attributes: Readonly<Record<string, AttributeValue>> = {},
    options: AddOptions = {},
  ): string[] {
    const hint = options.hint ?? `grad_${opType.toLowerCase()}`;
    const outputs = Array.from({ length: options.outputCount ?? 1 }, () => this.freshName(hint));
    this.nodeCounter += 1;
    const nodeName = this.freshName(`${hint}_node${this.nodeCounter}`);
    const node = makeNode(opType, inputs, outputs, attributes, nodeName);
    if (options.copyAttributesFrom) {
      node.attribute = [...(options.copyAttributesFrom.attribute ?? []), ...(node.attribute ?? [])];
    }
    this.nodes.push(node);
    if (options.shape) {
      this.shapes.set(outputs[0], options.shape);
    }
    return outputs;
  }

  /** Adds a float32 constant initializer and returns its name. */
  constantFloat(values: readonly number[] | Float32Array, dims: Shape, hint = 'const'): string {
    const name = this.freshName(hint);
    this.initializers.push(float32Tensor(name, dims, Float32Array.from(values)));
    this.shapes.set(name, dims);
    return name;
  }

  /** Adds a float32 scalar constant and returns its name. */
  scalar(value: number, hint = 'scalar'): string {
    return this.constantFloat([value], [], hint);
  }

  /** Adds an int64 constant initializer and returns its name. */
  constantInt64(values: readonly number[], dims: Shape = [values.length], hint = 'const_i64'): string {
    const name = this.freshName(hint);
    this.initializers.push(int64Tensor(name, dims, values));
    this.shapes.set(name, dims);
    this.constantValues.set(name, values);
    return name;
  }

  /** Values of the int64 constants known to the builder, by tensor name. */
  get int64Constants(): ReadonlyMap<string, readonly number[]> {
    return this.constantValues;
  }

  /** Returns the static shape of a tensor; throws when it is not known. */
  shape(name: string): Shape {
    const shape = this.shapes.get(name);
    if (!shape) {
      throw new Error(`the static shape of tensor ${name} is unknown, so its gradient cannot be built`);
    }
    return shape;
  }

  hasShape(name: string): boolean {
    return this.shapes.has(name);
  }

  setShape(name: string, shape: Shape): void {
    this.shapes.set(name, shape);
  }

  /**
   * Reshapes `tensor` to `shape`. A shape with at most one run-time dimension becomes a constant with
   * -1 there; otherwise the target is read at run time from `like`, a tensor that has that shape.
   */
  reshape(tensor: string, shape: Shape, like?: string): string {
    const unknown = shape.filter((dim) => dim < 0).length;
    let target: string;
    if (unknown <= 1) {
      target = this.constantInt64(shape.map((dim) => (dim < 0 ? -1 : dim)), [shape.length], 'shape');
    } else if (like) {
      target = this.add('Shape', [like], {}, { hint: 'shape' });
    } else {
      throw new Error(`cannot reshape ${tensor} to [${shape.join(', ')}] with several run-time dimensions`);
    }
    return this.add('Reshape', [tensor, target], {}, { hint: `${tensor}_reshaped`, shape });
  }

  /** Sums `tensor` over `axes` and keeps or drops the reduced axes. */
  reduceSum(tensor: string, axes: readonly number[], keepDims: boolean, hint?: string): string {
    const axesName = this.constantInt64(axes, [axes.length], 'axes');
    return this.add('ReduceSum', [tensor, axesName], { keepdims: keepDims ? 1 : 0 }, { hint });
  }

  /** Transposes `tensor` with `permutation`, recording the new shape when the old one is known. */
  transpose(tensor: string, permutation: readonly number[], hint?: string): string {
    const shape = this.shapes.get(tensor);
    return this.add('Transpose', [tensor], { perm: permutation }, { hint, shape: shape ? permutation.map((axis) => shape[axis]) : undefined });
  }

  /** Multiplies by a scalar constant, or returns `tensor` itself when the factor is 1. */
  scale(tensor: string, factor: number, hint?: string): string {
    if (factor === 1) {
      return tensor;
    }
    return this.add('Mul', [tensor, this.scalar(factor)], {}, { hint, shape: this.shapes.get(tensor) });
  }

  /**
   * Sums a gradient of shape `gradientShape` down to `targetShape`, undoing numpy-style broadcasting:
   * leading extra axes and axes where the target has size 1 are summed, then the result is reshaped.
   */
  reduceToShape(gradient: string, gradientShape: Shape, targetShape: Shape, like?: string): string {
    const extra = gradientShape.length - targetShape.length;
    const axes: number[] = [];
    for (let axis = 0; axis < gradientShape.length; axis++) {
      const targetDim = axis < extra ? undefined : targetShape[axis - extra];
      if (targetDim === undefined || (targetDim === 1 && gradientShape[axis] !== 1)) {
        axes.push(axis);
      }
    }
    if (axes.length === 0 && extra === 0) {
      return gradient;
    }
    const summed = axes.length > 0 ? this.reduceSum(gradient, axes, true) : gradient;
    const summedShape = gradientShape.map((dim, axis) => (axes.includes(axis) ? 1 : dim));
    if (summedShape.length === targetShape.length) {
      this.setShape(summed, targetShape);
      return summed;
    }
    return this.reshape(summed, targetShape, like);
  }
}
