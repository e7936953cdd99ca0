// Finds the pooled feature tensor of a classification backbone and cuts the graph there, so a session
// computes only the features and not the original classifier.
import { float32ValueInfo, onnx, type ModelProto, type NodeProto } from '../onnx/model.js';

/** Error for a graph where the feature tensor cannot be found or does not exist. */
export class FeatureTensorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FeatureTensorError';
  }
}

const poolingOperators = new Set(['GlobalAveragePool', 'GlobalMaxPool', 'ReduceMean']);
const flatteningOperators = new Set(['Flatten', 'Reshape', 'Squeeze']);

/**
 * Finds the pooled features that feed a backbone's classifier: the output of the last global pooling
 * node, followed through one Flatten, Reshape or Squeeze when one consumes it. With `requested`, checks
 * that a tensor or node of that name exists and returns its tensor name.
 */
export function findFeatureTensor(model: ModelProto, modelPath: string, requested?: string): string {
  const nodes = model.graph?.node ?? [];
  if (requested) {
    return resolveRequestedTensor(nodes, modelPath, requested);
  }

  const pooling = [...nodes].reverse().find((node) => poolingOperators.has(node.opType ?? ''));
  if (!pooling?.output?.[0]) {
    const candidates = nodes.slice(-6).map((node) => `${node.output?.[0]} (${node.opType})`);
    throw new FeatureTensorError(`No global pooling node found in ${modelPath}, so the feature tensor is unknown. Pass --feature-node with the name of the pooled feature tensor; the last tensors of the graph are: ${candidates.join(', ')}.`);
  }

  const pooled = pooling.output[0];
  const flatten = nodes.find((node) => flatteningOperators.has(node.opType ?? '') && node.input?.[0] === pooled);
  return flatten?.output?.[0] ?? pooled;
}

function resolveRequestedTensor(nodes: NodeProto[], modelPath: string, requested: string): string {
  if (nodes.some((node) => node.output?.includes(requested))) {
    return requested;
  }
  const byName = nodes.find((node) => node.name === requested);
  if (byName?.output?.[0]) {
    return byName.output[0];
  }
  throw new FeatureTensorError(`--feature-node ${requested} is neither a tensor nor a node of ${modelPath}. Pass the name of a node output, for example the output of its GlobalAveragePool.`);
}

/**
 * Returns a copy of `model` that keeps only the nodes and initializers needed to compute
 * `tensorName`, with that tensor as the single graph output. Initializer data is shared, not copied.
 */
export function cutAtTensor(model: ModelProto, tensorName: string): ModelProto {
  const graph = model.graph!;
  const nodes = graph.node ?? [];
  const producer = new Map<string, NodeProto>();
  for (const node of nodes) {
    for (const output of node.output ?? []) {
      producer.set(output, node);
    }
  }

  // Walk backwards from the feature tensor and mark every node it depends on.
  const needed = new Set<NodeProto>();
  const neededTensors = new Set<string>();
  const pending = [tensorName];
  while (pending.length > 0) {
    const tensor = pending.pop()!;
    if (neededTensors.has(tensor)) {
      continue;
    }
    neededTensors.add(tensor);
    const node = producer.get(tensor);
    if (node && !needed.has(node)) {
      needed.add(node);
      pending.push(...(node.input ?? []).filter((input) => input !== ''));
    }
  }

  const keptNodes = nodes.filter((node) => needed.has(node));
  const keptInitializers = (graph.initializer ?? []).filter((tensor) => neededTensors.has(tensor.name ?? ''));
  const initializerNames = new Set(keptInitializers.map((tensor) => tensor.name));
  const keptInputs = (graph.input ?? []).filter((input) => neededTensors.has(input.name ?? '') && !initializerNames.has(input.name));
  const declaredOutput = [...(graph.output ?? []), ...(graph.valueInfo ?? [])].find((info) => info.name === tensorName);

  return onnx.ModelProto.create({
    ...model,
    graph: onnx.GraphProto.create({
      ...graph,
      node: keptNodes,
      initializer: keptInitializers,
      input: keptInputs,
      output: [declaredOutput ?? float32ValueInfo(tensorName)],
      valueInfo: (graph.valueInfo ?? []).filter((info) => neededTensors.has(info.name ?? '')),
    }),
  });
}
