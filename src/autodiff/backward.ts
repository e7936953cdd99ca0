// Reverse-mode walk over a forward graph: visits nodes in reverse topological order, calls each
// node's gradient rule and sums the gradient contributions of tensors with several consumers.
import type { NodeProto } from '../onnx/model.js';
import { unsupportedOperator, gradientRules } from './gradientRules.js';
import type { GradientRule } from './gradientContext.js';
import type { GraphBuilder } from './graphBuilder.js';

/**
 * Returns every tensor that depends on one of `sources`, the sources included. Only these tensors
 * can carry a gradient toward a source, so backward work elsewhere is skipped.
 */
export function tensorsDependingOn(nodes: readonly NodeProto[], sources: Iterable<string>): Set<string> {
  const dependent = new Set(sources);
  for (const node of nodes) {
    if ((node.input ?? []).some((input) => dependent.has(input))) {
      for (const output of node.output ?? []) {
        if (output) {
          dependent.add(output);
        }
      }
    }
  }
  return dependent;
}

/**
 * Appends to `builder` the backward nodes that compute the gradients of `targets` from the seed
 * gradients, and returns each target's gradient tensor (undefined when no gradient reaches it).
 *
 * @param nodes forward nodes in topological order
 * @param seeds gradient tensor for each forward tensor where backpropagation starts (usually the logits)
 * @param targets tensors whose gradients are requested, usually trainable initializers
 * @param rules gradient rules by operator type
 */
export function buildBackward(
  nodes: readonly NodeProto[],
  builder: GraphBuilder,
  seeds: ReadonlyMap<string, string>,
  targets: readonly string[],
  rules: Readonly<Record<string, GradientRule>> = gradientRules,
): Map<string, string | undefined> {
  const needed = tensorsDependingOn(nodes, targets);
  const contributions = new Map<string, string[]>();
  for (const [tensor, gradient] of seeds) {
    contributions.set(tensor, [gradient]);
  }

  // Sums the contributions of a tensor once all of its consumers have been visited.
  const totals = new Map<string, string | undefined>();
  const totalGradient = (tensor: string): string | undefined => {
    if (totals.has(tensor)) {
      return totals.get(tensor);
    }
    const parts = contributions.get(tensor) ?? [];
    let total: string | undefined;
    if (parts.length === 1) {
      total = parts[0];
    } else if (parts.length === 2) {
      total = builder.add('Add', parts, {}, { hint: `${tensor}_grad_sum` });
    } else if (parts.length > 2) {
      total = builder.add('Sum', parts, {}, { hint: `${tensor}_grad_sum` });
    }
    totals.set(tensor, total);
    return total;
  };

  for (let index = nodes.length - 1; index >= 0; index--) {
    const node = nodes[index];
    const inputs = node.input ?? [];
    const needsGradient = inputs.map((input) => input !== '' && needed.has(input));
    if (!needsGradient.some(Boolean)) {
      continue;
    }

    const outputGradients = (node.output ?? []).map((output) => (output ? totalGradient(output) : undefined));
    if (outputGradients.every((gradient) => gradient === undefined)) {
      continue;
    }

    const isDefaultDomain = !node.domain || node.domain === 'ai.onnx';
    const rule = isDefaultDomain ? rules[node.opType ?? ''] : undefined;
    if (!rule) {
      unsupportedOperator({ node });
    }
    const inputGradients = rule({ node, builder, outputGradients, needsGradient });

    inputs.forEach((input, inputIndex) => {
      const gradient = inputGradients[inputIndex];
      if (gradient && needsGradient[inputIndex]) {
        const parts = contributions.get(input) ?? [];
        parts.push(gradient);
        contributions.set(input, parts);
      }
    });
  }

  return new Map(targets.map((target) => [target, totalGradient(target)]));
}
