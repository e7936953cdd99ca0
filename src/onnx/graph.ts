// Graph surgery on ONNX models: building nodes and attributes, topological order, cutting or splitting
// a model at a tensor, replacing the input shape and appending a linear classification head.
import {
  type AttributeProto,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  float32Tensor,
  float32ValueInfo,
  onnx,
  toNumber,
  valueInfoShape,
} from './model.js';

const AttributeType = onnx.AttributeProto.AttributeType;

/**
 * Value of a node attribute: a number is an INT, a number array is INTS, a string is STRING, and
 * `{ float }` or `{ floats }` mark FLOAT and FLOATS.
 */
export type AttributeValue = number | readonly number[] | string | { float: number } | { floats: readonly number[] };

function isNumberArray(value: AttributeValue): value is readonly number[] {
  return Array.isArray(value);
}

/** Builds an AttributeProto from a plain value; see AttributeValue for the type mapping. */
export function makeAttribute(name: string, value: AttributeValue): AttributeProto {
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) {
      throw new Error(`attribute ${name} = ${value} is not an integer; pass { float: ${value} } for a FLOAT attribute`);
    }
    return onnx.AttributeProto.create({ name, type: AttributeType.INT, i: value });
  }
  if (typeof value === 'string') {
    return onnx.AttributeProto.create({ name, type: AttributeType.STRING, s: new TextEncoder().encode(value) });
  }
  if (isNumberArray(value)) {
    return onnx.AttributeProto.create({ name, type: AttributeType.INTS, ints: [...value] });
  }
  if ('float' in value) {
    return onnx.AttributeProto.create({ name, type: AttributeType.FLOAT, f: value.float });
  }
  return onnx.AttributeProto.create({ name, type: AttributeType.FLOATS, floats: [...value.floats] });
}

/** Builds a NodeProto in the default ONNX domain. */
export function makeNode(
  opType: string,
  inputs: readonly string[],
  outputs: readonly string[],
  attributes: Readonly<Record<string, AttributeValue>> = {},
  name = '',
): NodeProto {
  return onnx.NodeProto.create({
    opType,
    name,
    input: [...inputs],
    output: [...outputs],
    attribute: Object.entries(attributes).map(([key, value]) => makeAttribute(key, value)),
  });
}

/** Finds an attribute of a node by name. */
export function findAttribute(node: NodeProto, name: string): AttributeProto | undefined {
  return (node.attribute ?? []).find((attribute) => attribute.name === name);
}

/** Reads a float attribute of a node, or returns `fallback` when it is absent. */
export function floatAttribute(node: NodeProto, name: string, fallback: number): number {
  const attribute = findAttribute(node, name);
  return attribute ? (attribute.f ?? 0) : fallback;
}

/** Reads a string attribute of a node, or returns `fallback` when it is absent. */
export function stringAttribute(node: NodeProto, name: string, fallback: string): string {
  const attribute = findAttribute(node, name);
  return attribute?.s ? new TextDecoder().decode(attribute.s) : fallback;
}

/** Returns a readable label for a node in error messages: its op type and its name or first output. */
export function describeNode(node: NodeProto): string {
  const name = node.name ? node.name : `(unnamed, output ${node.output?.[0] ?? '?'})`;
  return `${node.opType} node ${name}`;
}

/**
 * Sorts nodes so that every node comes after the producers of its inputs. Tensors that no node
 * produces count as graph inputs or initializers. Throws when the graph has a cycle.
 */
export function topologicalSort(nodes: readonly NodeProto[]): NodeProto[] {
  const producerIndex = new Map<string, number>();
  nodes.forEach((node, index) => {
    for (const output of node.output ?? []) {
      if (output) {
        producerIndex.set(output, index);
      }
    }
  });

  const pendingInputs = nodes.map(() => 0);
  const consumers: number[][] = nodes.map(() => []);
  nodes.forEach((node, index) => {
    const producers = new Set<number>();
    for (const input of node.input ?? []) {
      const producer = producerIndex.get(input);
      if (producer !== undefined && producer !== index) {
        producers.add(producer);
      }
    }
    pendingInputs[index] = producers.size;
    for (const producer of producers) {
      consumers[producer].push(index);
    }
  });

  // Visiting ready nodes in their original order keeps an already sorted graph unchanged.
  const ready = nodes.map((_, index) => index).filter((index) => pendingInputs[index] === 0);
  const sorted: NodeProto[] = [];
  for (let cursor = 0; cursor < ready.length; cursor++) {
    const index = ready[cursor];
    sorted.push(nodes[index]);
    for (const consumer of consumers[index]) {
      pendingInputs[consumer] -= 1;
      if (pendingInputs[consumer] === 0) {
        ready.push(consumer);
      }
    }
  }
  if (sorted.length !== nodes.length) {
    throw new Error(`the graph has a cycle: ${nodes.length - sorted.length} nodes never become ready`);
  }
  return sorted;
}

/**
 * Returns the nodes needed to compute `outputs`, in topological order. Nodes that only feed other
 * tensors are dropped.
 */
export function nodesNeededFor(nodes: readonly NodeProto[], outputs: Iterable<string>): NodeProto[] {
  const sorted = topologicalSort(nodes);
  const needed = new Set(outputs);
  const kept: NodeProto[] = [];
  for (let index = sorted.length - 1; index >= 0; index--) {
    const node = sorted[index];
    if ((node.output ?? []).some((output) => needed.has(output))) {
      kept.push(node);
      for (const input of node.input ?? []) {
        if (input) {
          needed.add(input);
        }
      }
    }
  }
  return kept.reverse();
}

function copyModel(model: ModelProto, graph: GraphProto): ModelProto {
  return onnx.ModelProto.create({
    irVersion: model.irVersion,
    opsetImport: model.opsetImport,
    producerName: model.producerName,
    producerVersion: model.producerVersion,
    domain: model.domain,
    modelVersion: model.modelVersion,
    docString: model.docString,
    metadataProps: model.metadataProps,
    graph: onnx.GraphProto.create(graph),
  });
}

function requireGraph(model: ModelProto): GraphProto {
  if (!model.graph) {
    throw new Error('the model has no graph');
  }
  return model.graph;
}

/**
 * Returns a copy of `model` whose only output is `tensorName`, keeping only the nodes, initializers
 * and inputs needed to compute it. The input model is not changed, and the copy shares its
 * initializer data.
 */
export function cutAtTensor(model: ModelProto, tensorName: string): ModelProto {
  const graph = requireGraph(model);
  const nodes = nodesNeededFor(graph.node ?? [], [tensorName]);
  const produced = new Set(nodes.flatMap((node) => node.output ?? []));
  const graphInputNames = new Set((graph.input ?? []).map((input) => input.name));
  if (!produced.has(tensorName) && !graphInputNames.has(tensorName)) {
    const outputs = (graph.output ?? []).map((output) => output.name).join(', ');
    throw new Error(`tensor ${tensorName} is not produced by any node of the model; graph outputs are: ${outputs}`);
  }

  const used = new Set(nodes.flatMap((node) => node.input ?? []));
  used.add(tensorName);
  const declared = [...(graph.output ?? []), ...(graph.valueInfo ?? [])].find((info) => info.name === tensorName);
  const output = declared
    ? onnx.ValueInfoProto.create({ name: tensorName, type: declared.type })
    : onnx.ValueInfoProto.create({ name: tensorName, type: { tensorType: { elemType: 1 } } });

  return copyModel(model, {
    name: graph.name,
    node: nodes,
    input: (graph.input ?? []).filter((input) => used.has(input.name ?? '')),
    output: [output],
    initializer: (graph.initializer ?? []).filter((tensor) => used.has(tensor.name ?? '')),
    valueInfo: (graph.valueInfo ?? []).filter((info) => used.has(info.name ?? '')),
  });
}

/**
 * Returns a copy of `model` whose graph input `inputName` has the given shape (a string is a symbolic
 * dimension such as the batch size). Use it to run a fully convolutional backbone at another image
 * size. Declared shapes of intermediate tensors are dropped because they may no longer hold.
 */
export function setInputShape(model: ModelProto, inputName: string, shape: readonly (number | string)[]): ModelProto {
  const graph = requireGraph(model);
  const inputs = graph.input ?? [];
  const index = inputs.findIndex((input) => input.name === inputName);
  if (index < 0) {
    throw new Error(`input ${inputName} not found; the model inputs are: ${inputs.map((input) => input.name).join(', ')}`);
  }
  const current = valueInfoShape(inputs[index]);
  if (current.length !== shape.length) {
    throw new Error(`input ${inputName} has rank ${current.length}, but the new shape [${shape.join(', ')}] has rank ${shape.length}`);
  }

  const newInputs = [...inputs];
  newInputs[index] = float32ValueInfo(inputName, shape);
  const outputs = (graph.output ?? []).map((output) => {
    const rank = output.type?.tensorType?.shape?.dim?.length;
    if (rank === undefined) {
      return output;
    }
    const dims = valueInfoShape(output).map((dim, axis) => (axis === 0 && typeof shape[0] === 'string' ? shape[0] : dim));
    return float32ValueInfo(output.name ?? '', dims.map((dim, axis) => (dim === -1 ? `${output.name}_dim${axis}` : dim)));
  });
  return copyModel(model, { ...graph, input: newInputs, output: outputs, valueInfo: [] });
}

/** Weights of a linear layer `logits = features · weightᵀ + bias` appended by appendLinearHead. */
export interface LinearHead {
  /** Tensor that feeds the head, of shape [N, featureCount]. */
  featuresName: string;
  /** Row-major weight of shape [labelCount, featureCount]. */
  weight: Float32Array;
  /** Bias of length labelCount. */
  bias: Float32Array;
  /** Name of the new graph output; default 'logits'. */
  logitsName?: string;
  /** Initializer name of the weight; default 'head_weight'. */
  weightName?: string;
  /** Initializer name of the bias; default 'head_bias'. */
  biasName?: string;
}

/**
 * Returns a copy of `model` with Gemm(features, weight, bias, transB=1) appended, whose output
 * `logitsName` [N, labelCount] becomes the only graph output. Combine with cutAtTensor to replace a
 * backbone's classifier: `appendLinearHead(cutAtTensor(model, 'features'), head)`.
 */
export function appendLinearHead(model: ModelProto, head: LinearHead): ModelProto {
  const graph = requireGraph(model);
  const logitsName = head.logitsName ?? 'logits';
  const weightName = head.weightName ?? 'head_weight';
  const biasName = head.biasName ?? 'head_bias';
  const labelCount = head.bias.length;
  if (labelCount === 0 || head.weight.length % labelCount !== 0) {
    throw new Error(`head weight has ${head.weight.length} values, which is not a multiple of the ${labelCount} bias values`);
  }
  const featureCount = head.weight.length / labelCount;

  const taken = new Set<string>([
    ...(graph.node ?? []).flatMap((node) => [...(node.input ?? []), ...(node.output ?? [])]),
    ...(graph.initializer ?? []).map((tensor) => tensor.name ?? ''),
    ...(graph.input ?? []).map((input) => input.name ?? ''),
  ]);
  for (const name of [logitsName, weightName, biasName]) {
    if (taken.has(name)) {
      throw new Error(`the model already has a tensor named ${name}; pass another name for the head`);
    }
  }
  if (!taken.has(head.featuresName)) {
    throw new Error(`tensor ${head.featuresName} not found in the model; pass the name of the backbone's feature output`);
  }

  const batchDim = (graph.input?.[0] && toNumber(graph.input[0].type?.tensorType?.shape?.dim?.[0]?.dimValue)) || 'N';
  return copyModel(model, {
    ...graph,
    node: [...(graph.node ?? []), makeNode('Gemm', [head.featuresName, weightName, biasName], [logitsName], { transB: 1 }, 'linear_head')],
    initializer: [
      ...(graph.initializer ?? []),
      float32Tensor(weightName, [labelCount, featureCount], head.weight),
      float32Tensor(biasName, [labelCount], head.bias),
    ],
    output: [float32ValueInfo(logitsName, [batchDim, labelCount])],
  });
}

/** The two halves of a model split at one tensor by splitAtTensor. */
export interface SplitModel {
  /** Model from the original inputs to the boundary tensor, its only output. */
  prefix: ModelProto;
  /** Model from the boundary tensor, its only input, to the original outputs. */
  suffix: ModelProto;
}

/**
 * Splits `model` at `boundaryName`, a tensor that every path from the graph inputs to the outputs
 * passes through, such as the output of a backbone stage. `boundaryShape` is the boundary's shape,
 * with a string for the batch dimension. Typical use: run the frozen layers as an inference session
 * with constant weights and build a training graph from the suffix alone.
 */
export function splitAtTensor(model: ModelProto, boundaryName: string, boundaryShape: readonly (number | string)[]): SplitModel {
  const graph = requireGraph(model);
  const prefix = cutAtTensor(model, boundaryName);
  const boundaryInfo = float32ValueInfo(boundaryName, boundaryShape);
  prefix.graph!.output = [boundaryInfo];

  // Nodes of the suffix: those the outputs need, walking back no further than the boundary.
  const outputNames = (graph.output ?? []).map((output) => output.name ?? '');
  const sorted = topologicalSort(graph.node ?? []);
  const needed = new Set(outputNames);
  const suffixNodes: NodeProto[] = [];
  for (let index = sorted.length - 1; index >= 0; index--) {
    const node = sorted[index];
    if (!(node.output ?? []).some((output) => needed.has(output))) {
      continue;
    }
    suffixNodes.push(node);
    for (const input of node.input ?? []) {
      if (input && input !== boundaryName) {
        needed.add(input);
      }
    }
  }
  suffixNodes.reverse();

  const initializerNames = new Set((graph.initializer ?? []).map((tensor) => tensor.name ?? ''));
  const produced = new Set(suffixNodes.flatMap((node) => node.output ?? []));
  const leaked = [...needed].filter((name) => name && !produced.has(name) && !initializerNames.has(name) && name !== boundaryName);
  if (leaked.length > 0) {
    throw new Error(`the outputs depend on ${leaked.join(', ')} without passing through ${boundaryName}; choose a boundary tensor that separates the model`);
  }

  const suffix = copyModel(model, {
    name: graph.name,
    node: suffixNodes,
    input: [boundaryInfo],
    output: graph.output,
    initializer: (graph.initializer ?? []).filter((tensor) => needed.has(tensor.name ?? '')),
    valueInfo: [],
  });
  return { prefix, suffix };
}
