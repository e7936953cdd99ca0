// The classifier head: Linear(features -> labels) whose logits go through a sigmoid, trained with
// binary cross-entropy computed from the logits.
import type { Random } from '../image/random.js';

/** Weights of a linear head, row-major `weight[label * featureSize + feature]`. */
export interface LinearHead {
  featureSize: number;
  labelCount: number;
  /** Weight matrix [labelCount, featureSize]. */
  weight: Float32Array;
  /** Bias [labelCount]. */
  bias: Float32Array;
}

/** Gradients of the mean BCE with respect to the head's parameters, and the loss itself. */
export interface HeadGradients {
  loss: number;
  weight: Float32Array;
  bias: Float32Array;
}

/**
 * Creates a head initialised as PyTorch's nn.Linear: weight and bias uniform in
 * [-1/sqrt(featureSize), 1/sqrt(featureSize)].
 */
export function createHead(featureSize: number, labelCount: number, random: Random): LinearHead {
  const bound = 1 / Math.sqrt(featureSize);
  const weight = new Float32Array(labelCount * featureSize);
  for (let index = 0; index < weight.length; index++) {
    weight[index] = random.uniform(-bound, bound);
  }
  const bias = new Float32Array(labelCount);
  for (let index = 0; index < bias.length; index++) {
    bias[index] = random.uniform(-bound, bound);
  }
  return { featureSize, labelCount, weight, bias };
}

/** Computes logits [count, labelCount] for features [count, featureSize]. */
export function headLogits(head: LinearHead, features: Float32Array, count: number): Float32Array {
  const { featureSize, labelCount, weight, bias } = head;
  const logits = new Float32Array(count * labelCount);
  for (let row = 0; row < count; row++) {
    const featureOffset = row * featureSize;
    for (let label = 0; label < labelCount; label++) {
      const weightOffset = label * featureSize;
      let sum = bias[label];
      for (let feature = 0; feature < featureSize; feature++) {
        sum += weight[weightOffset + feature] * features[featureOffset + feature];
      }
      logits[row * labelCount + label] = sum;
    }
  }
  return logits;
}

/**
 * Computes the mean BCE over all count x labelCount entries and its gradients. The loss uses the
 * stable form max(x, 0) - x t + log(1 + exp(-|x|)); its derivative by the logit is sigmoid(x) - t.
 */
export function headGradients(head: LinearHead, features: Float32Array, targets: Uint8Array | Float32Array, count: number): HeadGradients {
  const { featureSize, labelCount } = head;
  const logits = headLogits(head, features, count);
  const entries = count * labelCount;
  const logitGradients = new Float32Array(entries);
  let loss = 0;
  for (let index = 0; index < entries; index++) {
    const logit = logits[index];
    const target = targets[index];
    loss += Math.max(logit, 0) - logit * target + Math.log1p(Math.exp(-Math.abs(logit)));
    logitGradients[index] = (stableSigmoid(logit) - target) / entries;
  }

  const weight = new Float32Array(labelCount * featureSize);
  const bias = new Float32Array(labelCount);
  for (let row = 0; row < count; row++) {
    const featureOffset = row * featureSize;
    for (let label = 0; label < labelCount; label++) {
      const gradient = logitGradients[row * labelCount + label];
      bias[label] += gradient;
      const weightOffset = label * featureSize;
      for (let feature = 0; feature < featureSize; feature++) {
        weight[weightOffset + feature] += gradient * features[featureOffset + feature];
      }
    }
  }
  return { loss: loss / entries, weight, bias };
}

function stableSigmoid(value: number): number {
  if (value >= 0) {
    return 1 / (1 + Math.exp(-value));
  }
  const exponential = Math.exp(value);
  return exponential / (1 + exponential);
}
