// Multi-label classification metrics: F1, average precision, BCE and threshold tuning.
export { averagePrecision, precisionRecallCurve, type PrecisionRecallCurve } from './averagePrecision.js';
export {
  classificationScores,
  confusionCounts,
  f1FromCounts,
  type ClassificationScores,
  type ConfusionCounts,
} from './confusion.js';
export { bceWithLogits, sigmoid } from './logistic.js';
export {
  computeMetrics,
  type ComputeMetricsInput,
  type LabelMetrics,
  type MultiLabelMetrics,
} from './multilabel.js';
export { bestF1Threshold, type F1Threshold } from './threshold.js';
