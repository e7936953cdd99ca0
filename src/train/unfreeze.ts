// Chooses which parameters of the backbone train in the fine-tuning phase: all of them, those of the
// last N layers, or those from a named node onwards. The head always trains.
import { DataType, type ModelProto } from '../onnx/model.js';
import { topologicalSort } from '../onnx/graph.js';

/** Selection of backbone layers to unfreeze: all, the last N (or the last percentage) of the weighted layers, or from a node on. */
export type UnfreezeSpec = { kind: 'all' } | { kind: 'last'; layers: number } | { kind: 'lastPercent'; percent: number } | { kind: 'from'; node: string };

/** Error for an invalid --unfreeze value. */
export class UnfreezeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnfreezeError';
  }
}

/** Parses `all`, `last:N`, `last:P%` or `from:NODE`. */
export function parseUnfreeze(text: string): UnfreezeSpec {
  if (text === 'all') {
    return { kind: 'all' };
  }
  const lastPercent = /^last:(\d+(?:\.\d+)?)%$/.exec(text);
  if (lastPercent) {
    const percent = Number(lastPercent[1]);
    if (percent <= 0 || percent > 100) {
      throw new UnfreezeError(`--unfreeze ${text} is invalid; the percentage must be above 0 and at most 100.`);
    }
    return { kind: 'lastPercent', percent };
  }
  const last = /^last:(\d+)$/.exec(text);
  if (last) {
    const layers = Number(last[1]);
    if (layers < 1) {
      throw new UnfreezeError(`--unfreeze ${text} unfreezes no layer; pass last:N with N of at least 1.`);
    }
    return { kind: 'last', layers };
  }
  if (text.startsWith('from:') && text.length > 5) {
    return { kind: 'from', node: text.slice(5) };
  }
  throw new UnfreezeError(`--unfreeze ${text} is invalid. Pass all, last:N (the last N layers with weights), last:P% (that percentage of them, counted from the end) or from:NODE (every layer from the node named NODE on).`);
}

/** Inputs of each operator that hold trainable weights; BatchNormalization's running statistics stay frozen. */
const weightInputs: Record<string, readonly number[]> = {
  Conv: [1, 2],
  ConvTranspose: [1, 2],
  Gemm: [1, 2],
  MatMul: [1],
  BatchNormalization: [1, 2],
};

/** A node with trainable weights, and the names of those weights. */
export interface WeightedLayer {
  node: string;
  opType: string;
  parameters: string[];
}

/** Lists the layers with float32 initializer weights, in topological order. */
export function weightedLayers(model: ModelProto): WeightedLayer[] {
  const graph = model.graph!;
  const floatInitializers = new Set((graph.initializer ?? []).filter((tensor) => tensor.dataType === DataType.FLOAT).map((tensor) => tensor.name));
  const layers: WeightedLayer[] = [];
  const claimed = new Set<string>();
  for (const node of topologicalSort(graph.node ?? [])) {
    const positions = weightInputs[node.opType ?? ''] ?? [];
    const parameters = positions
      .map((position) => node.input?.[position])
      .filter((name): name is string => Boolean(name) && floatInitializers.has(name!) && !claimed.has(name!));
    parameters.forEach((name) => claimed.add(name));
    if (parameters.length > 0) {
      layers.push({ node: node.name || node.output?.[0] || '', opType: node.opType ?? '', parameters });
    }
  }
  return layers;
}

/**
 * Returns the backbone parameter names that train under `spec`, in topological order. `layers` are
 * the backbone's weighted layers without the head.
 */
export function selectTrainable(layers: readonly WeightedLayer[], spec: UnfreezeSpec): string[] {
  let chosen: readonly WeightedLayer[];
  if (spec.kind === 'all') {
    chosen = layers;
  } else if (spec.kind === 'last') {
    chosen = layers.slice(Math.max(0, layers.length - spec.layers));
  } else if (spec.kind === 'lastPercent') {
    const count = Math.max(1, Math.round((layers.length * spec.percent) / 100));
    chosen = layers.slice(layers.length - Math.min(count, layers.length));
  } else {
    const start = layers.findIndex((layer) => layer.node === spec.node);
    if (start < 0) {
      const names = layers.slice(-5).map((layer) => layer.node);
      throw new UnfreezeError(`--unfreeze from:${spec.node}: no layer with weights is named ${spec.node}. The last ones are ${names.join(', ')}.`);
    }
    chosen = layers.slice(start);
  }
  return chosen.flatMap((layer) => layer.parameters);
}
