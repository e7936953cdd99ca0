// Builds a training graph from a forward graph: forward pass, mean binary cross-entropy loss on the
// logits, and the gradient of every trainable parameter, all as standard ONNX operators that an
// ordinary onnxruntime InferenceSession runs.
import {
  DataType,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
  defaultOpsetVersion,
  float32ValueInfo,
  onnx,
  tensorDims,
  tensorToFloat32,
  tensorToInt64,
  toNumber,
  valueInfoShape,
} from '../onnx/model.js';
import { makeNode, nodesNeededFor, topologicalSort } from '../onnx/graph.js';
import { buildBackward } from './backward.js';
import { GraphBuilder, type Shape } from './graphBuilder.js';
import { lowerSmallDepthwiseConvolutions } from './depthwiseLowering.js';
import { TRAINING_OPSET, upgradeNodes } from './opsetUpgrade.js';
import { inferShapes } from './shapeInference.js';

export interface TrainingGraphSpec {
  /** Forward model: input images -> logits [N, L]. */
  forward: ModelProto;
  /** Image input, float32 [N, 3, H, W] with static H and W. */
  inputName: string;
  /** Graph output that contains the logits. */
  logitsName: string;
  /** Initializer names to train; all other initializers stay constant. */
  trainable: readonly string[];
  /** Static batch size; without it the batch dimension stays dynamic. */
  batchSize?: number;
  /**
   * Images per run that a dynamic-batch graph is built for, such as the micro-batch size. Some
   * gradient formulations are faster only for large enough batches. The shapes stay dynamic.
   */
  expectedBatchSize?: number;
}

export interface TrainingGraph {
  /**
   * Inputs: the images, 'targets' float32 [N, L] and each trainable parameter. Outputs: 'loss' (mean
   * binary cross-entropy with logits over N*L), 'probabilities' [N, L] and one gradient per parameter.
   */
  model: ModelProto;
  parameterNames: string[];
  /** Gradient output names, in the order of parameterNames. */
  gradientNames: string[];
}

/** Names of the inputs and outputs that buildTrainingGraph adds. */
export const TARGETS_NAME = 'targets';
export const LOSS_NAME = 'loss';
export const PROBABILITIES_NAME = 'probabilities';

/** Largest int64 initializer whose values shape inference reads (shape and axes inputs are small). */
const MAX_CONSTANT_VALUES = 64;

function collectConstants(initializers: readonly TensorProto[], nodes: readonly NodeProto[]): Map<string, readonly number[]> {
  const constants = new Map<string, readonly number[]>();
  for (const tensor of initializers) {
    const count = tensorDims(tensor).reduce((product, dim) => product * dim, 1);
    if (tensor.dataType === DataType.INT64 && count <= MAX_CONSTANT_VALUES) {
      constants.set(tensor.name ?? '', tensorToInt64(tensor));
    }
  }
  for (const node of nodes) {
    const value = node.opType === 'Constant' ? (node.attribute ?? []).find((attribute) => attribute.name === 'value')?.t : undefined;
    if (value && value.dataType === DataType.INT64) {
      constants.set(node.output?.[0] ?? '', tensorToInt64(value));
    }
  }
  return constants;
}

function constantNodeShapes(nodes: readonly NodeProto[]): Map<string, Shape> {
  const shapes = new Map<string, Shape>();
  for (const node of nodes) {
    const value = node.opType === 'Constant' ? (node.attribute ?? []).find((attribute) => attribute.name === 'value')?.t : undefined;
    if (value) {
      shapes.set(node.output?.[0] ?? '', tensorDims(value));
    }
  }
  return shapes;
}

function validateSpec(spec: TrainingGraphSpec, initializers: ReadonlyMap<string, TensorProto>): void {
  const graph = spec.forward.graph;
  if (!graph) {
    throw new Error('the forward model has no graph');
  }
  if (!(graph.input ?? []).some((input) => input.name === spec.inputName)) {
    const names = (graph.input ?? []).map((input) => input.name).join(', ');
    throw new Error(`image input ${spec.inputName} not found; the forward model's inputs are: ${names}`);
  }
  if (!(graph.output ?? []).some((output) => output.name === spec.logitsName)) {
    const names = (graph.output ?? []).map((output) => output.name).join(', ');
    throw new Error(`logits output ${spec.logitsName} not found; the forward model's outputs are: ${names}`);
  }
  if (spec.trainable.length === 0) {
    throw new Error('no trainable parameters given; list at least one initializer name in trainable');
  }
  const seen = new Set<string>();
  for (const name of spec.trainable) {
    const tensor = initializers.get(name);
    if (!tensor) {
      throw new Error(`trainable parameter ${name} is not an initializer of the forward model; check the name`);
    }
    if (tensor.dataType !== DataType.FLOAT) {
      throw new Error(`trainable parameter ${name} has data type ${tensor.dataType}; only float32 (1) initializers can be trained`);
    }
    if (seen.has(name)) {
      throw new Error(`trainable parameter ${name} is listed twice`);
    }
    seen.add(name);
  }
  if (spec.batchSize !== undefined && (!Number.isInteger(spec.batchSize) || spec.batchSize < 1)) {
    throw new Error(`batchSize ${spec.batchSize} is invalid; pass a positive integer or leave it out for a dynamic batch`);
  }
}

function imageShape(spec: TrainingGraphSpec): number[] {
  const input = (spec.forward.graph?.input ?? []).find((candidate) => candidate.name === spec.inputName) as ValueInfoProto;
  const shape = valueInfoShape(input);
  if (shape.slice(1).some((dim) => dim < 0)) {
    throw new Error(
      `image input ${spec.inputName} has shape [${shape.join(', ')}]; every dimension except the batch must be static, so set the input shape (setInputShape in src/onnx/graph.ts)`,
    );
  }
  return [spec.batchSize ?? -1, ...shape.slice(1)];
}

/**
 * Appends the loss, the probabilities and the gradient of the loss with respect to the logits:
 * loss = mean(max(x, 0) - x * t + log(1 + exp(-|x|))), d loss / d x = (sigmoid(x) - t) / (N * L).
 */
function appendLoss(builder: GraphBuilder, logits: string, logitsShape: Shape): string {
  const positivePart = builder.add('Relu', [logits], {}, { hint: 'loss_positive_part' });
  const product = builder.add('Mul', [logits, TARGETS_NAME], {}, { hint: 'loss_product' });
  const negativeMagnitude = builder.add('Neg', [builder.add('Abs', [logits], {}, { hint: 'loss_magnitude' })], {}, { hint: 'loss_negative_magnitude' });
  const softplus = builder.add('Softplus', [negativeMagnitude], {}, { hint: 'loss_softplus' });
  const elementLoss = builder.add('Add', [builder.add('Sub', [positivePart, product], {}, { hint: 'loss_difference' }), softplus], {}, { hint: 'loss_elements' });
  builder.nodes.push(makeNode('ReduceMean', [elementLoss], [LOSS_NAME], { keepdims: 0 }, 'loss_mean'));
  builder.nodes.push(makeNode('Sigmoid', [logits], [PROBABILITIES_NAME], {}, 'probabilities_sigmoid'));

  const error = builder.add('Sub', [PROBABILITIES_NAME, TARGETS_NAME], {}, { hint: 'loss_error' });
  const [batch, labels] = logitsShape;
  if (batch > 0) {
    return builder.scale(error, 1 / (batch * labels), 'logits_grad');
  }
  const count = builder.add('Cast', [builder.add('Size', [logits], {}, { hint: 'logits_size' })], { to: DataType.FLOAT }, { hint: 'logits_count' });
  return builder.add('Div', [error, count], {}, { hint: 'logits_grad' });
}

/**
 * Builds the training graph of `spec.forward`. Frozen parameters stay constant initializers and get
 * no backward nodes: only nodes on a path from a trainable parameter to the logits are differentiated,
 * and nodes no output needs are removed.
 */
export function buildTrainingGraph(spec: TrainingGraphSpec): TrainingGraph {
  const graph = spec.forward.graph;
  const initializerList = graph?.initializer ?? [];
  const initializers = new Map(initializerList.map((tensor) => [tensor.name ?? '', tensor]));
  validateSpec(spec, initializers);
  const forwardGraph = graph!;

  const reservedNames = [TARGETS_NAME, LOSS_NAME, PROBABILITIES_NAME];
  const takenNames = new Set<string>([
    ...(forwardGraph.node ?? []).flatMap((node) => [...(node.input ?? []), ...(node.output ?? []), node.name ?? '']),
    ...initializerList.map((tensor) => tensor.name ?? ''),
    ...(forwardGraph.input ?? []).map((input) => input.name ?? ''),
  ]);
  for (const name of reservedNames) {
    if (takenNames.has(name)) {
      throw new Error(`the forward model already uses the tensor name ${name}, which the training graph needs; rename it in the forward model`);
    }
    takenNames.add(name);
  }

  const forwardOpset = defaultOpsetVersion(spec.forward);
  const trainingOpset = Math.max(forwardOpset, TRAINING_OPSET);
  const freshForwardName = (hint: string) => {
    let name = hint;
    for (let suffix = 1; takenNames.has(name); suffix++) {
      name = `${hint}_${suffix}`;
    }
    takenNames.add(name);
    return name;
  };
  const upgraded = upgradeNodes(topologicalSort(forwardGraph.node ?? []), forwardOpset, freshForwardName);
  let forwardNodes = nodesNeededFor(upgraded.nodes, [spec.logitsName]);
  const allInitializers = [...initializerList, ...upgraded.initializers];

  const inputShape = imageShape(spec);
  const knownShapes = new Map<string, Shape>([[spec.inputName, inputShape], ...constantNodeShapes(forwardNodes)]);
  for (const tensor of allInitializers) {
    knownShapes.set(tensor.name ?? '', tensorDims(tensor));
  }
  let int64Constants = collectConstants(allInitializers, forwardNodes);
  let shapes = inferShapes(forwardNodes, { shapes: knownShapes, int64Constants });

  const lowering = lowerSmallDepthwiseConvolutions(forwardNodes, shapes, new Set(spec.trainable), takenNames);
  if (lowering.lowered > 0) {
    forwardNodes = lowering.nodes;
    allInitializers.push(...lowering.initializers);
    for (const tensor of lowering.initializers) {
      knownShapes.set(tensor.name ?? '', tensorDims(tensor));
    }
    int64Constants = collectConstants(allInitializers, forwardNodes);
    shapes = inferShapes(forwardNodes, { shapes: knownShapes, int64Constants });
  }
  const logitsShape = shapes.get(spec.logitsName);
  if (!logitsShape || logitsShape.length !== 2 || logitsShape[1] < 0) {
    throw new Error(`logits ${spec.logitsName} must have a static shape [N, L], but shape inference found ${logitsShape ? `[${logitsShape.join(', ')}]` : 'none'}`);
  }

  const builder = new GraphBuilder(takenNames, shapes, int64Constants);
  builder.expectedBatchSize = spec.batchSize ?? spec.expectedBatchSize;
  const logitsGradient = appendLoss(builder, spec.logitsName, logitsShape);
  const parameterNames = [...spec.trainable];
  const gradients = buildBackward(forwardNodes, builder, new Map([[spec.logitsName, logitsGradient]]), parameterNames);

  const gradientNames = parameterNames.map((name) => {
    const gradient = gradients.get(name);
    if (!gradient) {
      throw new Error(`trainable parameter ${name} does not affect the logits ${spec.logitsName}; remove it from trainable`);
    }
    const outputName = builder.freshName(`${name}_grad`);
    builder.nodes.push(makeNode('Identity', [gradient], [outputName], {}, builder.freshName(`${outputName}_output`)));
    return outputName;
  });

  const outputNames = [LOSS_NAME, PROBABILITIES_NAME, ...gradientNames];
  const nodes = nodesNeededFor([...forwardNodes, ...builder.nodes], outputNames);
  const usedTensors = new Set(nodes.flatMap((node) => node.input ?? []));
  const trainableSet = new Set(parameterNames);
  const constantInitializers = [...allInitializers, ...builder.initializers].filter((tensor) => usedTensors.has(tensor.name ?? '') && !trainableSet.has(tensor.name ?? ''));

  const batchDim: number | string = inputShape[0] > 0 ? inputShape[0] : 'N';
  const labelCount = logitsShape[1];
  const inputs = [
    float32ValueInfo(spec.inputName, [batchDim, ...inputShape.slice(1)]),
    float32ValueInfo(TARGETS_NAME, [batchDim, labelCount]),
    ...parameterNames.map((name) => float32ValueInfo(name, tensorDims(initializers.get(name) as TensorProto))),
  ];
  const outputs = [
    float32ValueInfo(LOSS_NAME, []),
    float32ValueInfo(PROBABILITIES_NAME, [batchDim, labelCount]),
    ...gradientNames.map((name, index) => float32ValueInfo(name, tensorDims(initializers.get(parameterNames[index]) as TensorProto))),
  ];

  const otherDomains = (spec.forward.opsetImport ?? []).filter((opset) => opset.domain && opset.domain !== 'ai.onnx');
  const model = onnx.ModelProto.create({
    irVersion: Math.max(toNumber(spec.forward.irVersion), 8),
    producerName: 'multitag autodiff',
    opsetImport: [{ domain: '', version: trainingOpset }, ...otherDomains],
    graph: onnx.GraphProto.create({
      name: `${forwardGraph.name || 'forward'}_training`,
      node: nodes,
      input: inputs,
      output: outputs,
      initializer: constantInitializers,
    }),
  });
  return { model, parameterNames, gradientNames };
}

/** Name, shape and float32 values of one parameter, as returned by readParameters. */
export interface ParameterValue {
  name: string;
  dims: number[];
  values: Float32Array;
}

/**
 * Reads the named float32 initializers of `model` in the given order, for example the starting values
 * of TrainingGraph.parameterNames from the forward model. Throws for a name that is not an initializer.
 */
export function readParameters(model: ModelProto, names: readonly string[]): ParameterValue[] {
  const initializers = new Map((model.graph?.initializer ?? []).map((tensor) => [tensor.name ?? '', tensor]));
  return names.map((name) => {
    const tensor = initializers.get(name);
    if (!tensor) {
      throw new Error(`parameter ${name} is not an initializer of the model; check the name`);
    }
    return { name, dims: tensorDims(tensor), values: tensorToFloat32(tensor) };
  });
}
