// Multi-label metrics over N images and L labels from row-major logits and targets.
import { averagePrecisionUnchecked } from './averagePrecision.js';
import { addPrediction, classificationScores, f1FromCounts, type ConfusionCounts } from './confusion.js';
import { bceWithLogits, sigmoid } from './logistic.js';
import { checkThreshold } from './validation.js';

/** Metrics of one label. */
export interface LabelMetrics {
  precision: number;
  recall: number;
  f1: number;
  /** Average precision, or NaN when the label has no positive target. */
  ap: number;
  /** Number of images with a positive target for this label. */
  support: number;
  tp: number;
  fp: number;
  fn: number;
  tn: number;
  /** Mean binary cross-entropy of this label over all images, in nats. */
  bce: number;
}

/** Metrics of a multi-label classifier on one data set. */
export interface MultiLabelMetrics {
  /** F1 of the counts summed over all labels: 2TP / (2TP + FP + FN). */
  microF1: number;
  /** Unweighted mean of the per-label F1, including labels without positives (their F1 is 0). */
  macroF1: number;
  /** Mean average precision over the labels that have a positive target, or NaN if none has one. */
  mAP: number;
  /** Fraction of images whose predicted label set equals the true label set. */
  exactMatch: number;
  /** Fraction of the N*L predictions that are wrong. */
  hammingLoss: number;
  /** Mean binary cross-entropy over all N*L entries, in nats. */
  bce: number;
  microPrecision: number;
  microRecall: number;
  /** Metrics keyed by label name. */
  perLabel: Record<string, LabelMetrics>;
}

/** Model outputs, true labels and decision thresholds for computeMetrics. */
export interface ComputeMetricsInput {
  /** Logits before the sigmoid, row-major [N, L]: entry i * L + l belongs to image i and label l. */
  logits: Float32Array;
  /** Targets, 0 or 1, in the same layout as `logits`. */
  targets: Uint8Array | Float32Array;
  /** Label names in column order; L = labels.length. */
  labels: readonly string[];
  /** Probability threshold for all labels, or one per label. Defaults to 0.5. */
  thresholds?: number | readonly number[];
}

/**
 * Computes multi-label classification metrics. A label is predicted positive when sigmoid(logit) >=
 * its threshold. Precision, recall and F1 follow scikit-learn's zero_division=0 rule (see
 * classificationScores). Average precision ranks images by logit, which gives the order of the
 * probabilities but keeps apart large logits whose probabilities round to the same number.
 *
 * Throws when the lengths do not match N*L, a threshold is missing or outside [0, 1], a target is not
 * 0 or 1, a logit is not finite, or a label name is repeated. O(N log N) per label.
 */
export function computeMetrics(input: ComputeMetricsInput): MultiLabelMetrics {
  const { logits, targets, labels } = input;
  const imageCount = checkShape(logits, targets, labels);
  const labelCount = labels.length;
  const thresholds = resolveThresholds(input.thresholds, labels);

  const imageHasError = new Uint8Array(imageCount);
  const logitColumn = new Float32Array(imageCount);
  const targetColumn = new Uint8Array(imageCount);
  const order = new Uint32Array(imageCount);
  const total: ConfusionCounts = { tp: 0, fp: 0, fn: 0, tn: 0 };
  const perLabel: Record<string, LabelMetrics> = {};
  let bceSum = 0;
  let f1Sum = 0;
  let apSum = 0;
  let labelsWithPositives = 0;

  for (let l = 0; l < labelCount; l++) {
    const counts: ConfusionCounts = { tp: 0, fp: 0, fn: 0, tn: 0 };
    let labelBceSum = 0;
    for (let i = 0; i < imageCount; i++) {
      const index = i * labelCount + l;
      const logit = logits[index];
      const target = targets[index];
      if (!Number.isFinite(logit)) {
        throw new Error(
          `computeMetrics: logits[${index}] (image ${i}, label "${labels[l]}") is ${logit}; every logit must be finite. A NaN or infinite output usually means training diverged, so retrain with a lower learning rate.`,
        );
      }
      if (target !== 0 && target !== 1) {
        throw new Error(
          `computeMetrics: targets[${index}] (image ${i}, label "${labels[l]}") is ${target}, but targets must be 0 or 1.`,
        );
      }
      const predicted = sigmoid(logit) >= thresholds[l];
      const positive = target === 1;
      addPrediction(counts, predicted, positive);
      if (predicted !== positive) {
        imageHasError[i] = 1;
      }
      labelBceSum += bceWithLogits(logit, target);
      logitColumn[i] = logit;
      targetColumn[i] = target;
    }

    const support = counts.tp + counts.fn;
    const ap = averagePrecisionUnchecked(logitColumn, targetColumn, support, order);
    const scores = classificationScores(counts);
    // Plain assignment to a label named "__proto__" would replace the prototype, so define the property.
    Object.defineProperty(perLabel, labels[l], {
      value: { ...scores, ap, support, ...counts, bce: labelBceSum / imageCount } satisfies LabelMetrics,
      enumerable: true,
      writable: true,
      configurable: true,
    });

    total.tp += counts.tp;
    total.fp += counts.fp;
    total.fn += counts.fn;
    total.tn += counts.tn;
    bceSum += labelBceSum;
    f1Sum += scores.f1;
    if (support > 0) {
      apSum += ap;
      labelsWithPositives++;
    }
  }

  let imagesWithError = 0;
  for (let i = 0; i < imageCount; i++) {
    imagesWithError += imageHasError[i];
  }
  const entryCount = imageCount * labelCount;
  const micro = classificationScores(total);
  return {
    microF1: f1FromCounts(total.tp, total.fp, total.fn),
    macroF1: f1Sum / labelCount,
    mAP: labelsWithPositives === 0 ? NaN : apSum / labelsWithPositives,
    exactMatch: (imageCount - imagesWithError) / imageCount,
    hammingLoss: (total.fp + total.fn) / entryCount,
    bce: bceSum / entryCount,
    microPrecision: micro.precision,
    microRecall: micro.recall,
    perLabel,
  };
}

/** Checks labels and array lengths and returns the number of images N. */
function checkShape(logits: Float32Array, targets: Uint8Array | Float32Array, labels: readonly string[]): number {
  const labelCount = labels.length;
  if (labelCount === 0) {
    throw new Error('computeMetrics: labels is empty; pass the label names in column order.');
  }
  const seen = new Set<string>();
  for (const label of labels) {
    if (seen.has(label)) {
      throw new Error(`computeMetrics: label "${label}" appears twice in labels; label names must be unique.`);
    }
    seen.add(label);
  }
  if (logits.length !== targets.length) {
    throw new Error(
      `computeMetrics: logits has length ${logits.length} but targets has length ${targets.length}; both must contain N * ${labelCount} values (N images by ${labelCount} labels, row-major).`,
    );
  }
  if (logits.length === 0) {
    throw new Error('computeMetrics: logits and targets are empty; pass at least one image.');
  }
  if (logits.length % labelCount !== 0) {
    throw new Error(
      `computeMetrics: logits has length ${logits.length}, which is not a multiple of the label count ${labelCount}; pass N * ${labelCount} values in row-major order.`,
    );
  }
  return logits.length / labelCount;
}

/** Expands `thresholds` to one checked probability per label. */
function resolveThresholds(thresholds: number | readonly number[] | undefined, labels: readonly string[]): Float64Array {
  const resolved = new Float64Array(labels.length);
  if (thresholds === undefined || typeof thresholds === 'number') {
    const threshold = thresholds ?? 0.5;
    checkThreshold('computeMetrics', 'threshold', threshold);
    resolved.fill(threshold);
    return resolved;
  }
  if (thresholds.length !== labels.length) {
    throw new Error(
      `computeMetrics: thresholds has length ${thresholds.length} but there are ${labels.length} labels (${labels.join(', ')}); pass one threshold per label or a single number.`,
    );
  }
  for (let l = 0; l < labels.length; l++) {
    checkThreshold('computeMetrics', `thresholds[${l}] (label "${labels[l]}")`, thresholds[l]);
    resolved[l] = thresholds[l];
  }
  return resolved;
}
