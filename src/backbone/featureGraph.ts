// Finds the pooled feature tensor of a classification backbone. Cutting the graph there (cutAtTensor)
// makes a session compute only the features and not the original classifier.
import type { ModelProto, NodeProto } from '../onnx/model.js';

export { cutAtTensor } from '../onnx/graph.js';

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
