// Types shared by the gradient rules and the reverse walk that calls them.
import type { NodeProto } from '../onnx/model.js';
import type { GraphBuilder } from './graphBuilder.js';

/** Arguments of a gradient rule for one forward node. */
export interface GradientContext {
  /** The forward node whose gradient the rule emits. */
  readonly node: NodeProto;
  /** Builder that receives the backward nodes and constants and returns static shapes of forward tensors. */
  readonly builder: GraphBuilder;
  /** Gradient tensor of the loss with respect to each node output, or undefined where none flows. */
  readonly outputGradients: readonly (string | undefined)[];
  /** For each node input, whether its gradient is needed. A rule emits nothing for the others. */
  readonly needsGradient: readonly boolean[];
}

/**
 * Emits the backward nodes of one forward node and returns the gradient tensor of each input, in
 * input order, with undefined for inputs that need no gradient or have none.
 */
export type GradientRule = (context: GradientContext) => (string | undefined)[];

/** Error for an operator or attribute that has no gradient rule. */
export class UnsupportedGradientError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedGradientError';
  }
}
