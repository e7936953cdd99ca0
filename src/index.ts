// The library API of multitag. The CLI is a thin layer over these functions.
export type { LogCallback, LogLevel, Progress, ProgressCallback } from './events.js';
export { catalog, type CatalogEntry } from './backbone/catalog.js';
export { FeatureExtractor, resolveBackbone, type BackboneRequest, type ResolvedBackbone } from './backbone/backbone.js';
export { cachedDownload, defaultCacheDir, downloadFile } from './backbone/download.js';
export type { Preprocessing } from './backbone/preprocessing.js';
export { defaultLayout, labelMatrix, loadDataset, loadSplit, type DatasetItem, type DatasetLayout, type DatasetSplit } from './data/dataset.js';
export { DataValidationError, type DataProblem } from './data/problems.js';
export { computeMetrics, type LabelMetrics, type MultiLabelMetrics } from './metrics/index.js';
export { train, type TrainHooks, type TrainResult } from './train/train.js';
export { defaultTrainOptions, type TrainOptions } from './train/options.js';
export { evaluate, type EvaluateRequest, type EvaluateResult } from './train/evaluate.js';
export { collectImagePaths, Predictor, type FilePrediction } from './train/predictor.js';
export { readModelMetadata, runFiles, type ModelMetadata } from './train/runFolder.js';
export type { EpochRecord, MonitoredMetric, PhaseName } from './train/record.js';
export { EarlyStopping, SaveBest, TrackerCallback, type TrainingCallback, type TrainingContext } from './train/callbacks.js';
