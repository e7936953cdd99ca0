// Evaluates a trained model on a labelled split: a data folder's test split, or any CSV and image folder.
import { join } from 'node:path';
import { defaultLayout, labelMatrix, loadSplit, type DatasetLayout, type DatasetSplit } from '../data/dataset.js';
import { DataValidationError, hasErrors, type DataProblem } from '../data/problems.js';
import { silentLog, silentProgress, type LogCallback, type ProgressCallback } from '../events.js';
import { computeMetrics, type MultiLabelMetrics } from '../metrics/index.js';
import { Predictor, type FileFailure } from './predictor.js';

/** An evaluation request: the model, and either a data folder's test split or a CSV with its image folder. */
export interface EvaluateRequest {
  /** Run or export folder holding model.onnx and model.json. */
  modelDir: string;
  dataDir?: string;
  layout?: Partial<DatasetLayout>;
  csvPath?: string;
  imagesDir?: string;
  /** One threshold for all labels instead of the model's own. */
  threshold?: number;
  threads?: number;
  maxPixels?: number;
}

/** Outcome of an evaluation. */
export interface EvaluateResult {
  metrics: MultiLabelMetrics;
  labels: string[];
  thresholds: number[];
  /** Images evaluated. */
  count: number;
  /** Images that could not be decoded and were left out. */
  failures: FileFailure[];
}

/** Error for labels of an evaluation CSV that do not match the model's labels. */
export class LabelMismatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LabelMismatchError';
  }
}

/** The labelled images to evaluate on: a data folder's test split, or a CSV with its image folder. */
export interface EvaluationSource {
  dataDir?: string;
  layout?: Partial<DatasetLayout>;
  csvPath?: string;
  imagesDir?: string;
}

/**
 * Loads and validates the split named by `source`: the CSV and image folder when given, else the data
 * folder's test split. Throws DataValidationError listing every error, and returns the warnings.
 */
export async function loadEvaluationSplit(source: EvaluationSource): Promise<{ split: DatasetSplit; warnings: DataProblem[]; csvPath: string }> {
  const layout = { ...defaultLayout, ...source.layout };
  const csvPath = source.csvPath ?? join(source.dataDir ?? '.', layout.testCsv);
  const imagesDir = source.imagesDir ?? join(source.dataDir ?? '.', layout.testImages);

  const { split, problems } = await loadSplit('test', csvPath, imagesDir);
  if (hasErrors(problems)) {
    throw new DataValidationError(problems);
  }
  return { split, warnings: problems, csvPath };
}

/** Evaluates the model on the requested split at its thresholds, or at `threshold` when given. */
export async function evaluate(request: EvaluateRequest, hooks: { log?: LogCallback; onProgress?: ProgressCallback } = {}): Promise<EvaluateResult> {
  const log = hooks.log ?? silentLog;
  const { split, warnings, csvPath } = await loadEvaluationSplit(request);
  for (const warning of warnings) {
    log('warn', `${warning.file}${warning.line ? `:${warning.line}` : ''}: ${warning.message}`);
  }

  const predictor = await Predictor.load(request.modelDir, { threads: request.threads, decode: { maxPixels: request.maxPixels } });
  try {
    const labels = predictor.metadata.labels;
    const columnOfLabel = labels.map((label) => split.labels.indexOf(label));
    if (columnOfLabel.some((column) => column < 0)) {
      throw new LabelMismatchError(
        `${csvPath} has the labels ${split.labels.join(', ')} but the model predicts ${labels.join(', ')}. Evaluate on a CSV with a column for every label of the model.`,
      );
    }

    const { predictions, failures } = await predictor.predictFiles(
      split.items.map((item) => item.path),
      { onProgress: hooks.onProgress ?? silentProgress },
    );
    for (const failure of failures) {
      log('warn', `left out of the evaluation: ${failure.message}`);
    }

    // Reorder the CSV's columns into the model's label order, for the images that decoded.
    const allTargets = labelMatrix(split);
    const rowOfPath = new Map(split.items.map((item, row) => [item.path, row]));
    const logits = new Float32Array(predictions.length * labels.length);
    const targets = new Uint8Array(predictions.length * labels.length);
    predictions.forEach((prediction, row) => {
      logits.set(prediction.logits, row * labels.length);
      const sourceRow = rowOfPath.get(prediction.file)!;
      columnOfLabel.forEach((column, label) => {
        targets[row * labels.length + label] = allTargets[sourceRow * split.labels.length + column];
      });
    });

    const thresholds = request.threshold !== undefined ? labels.map(() => request.threshold!) : predictor.metadata.thresholds;
    const metrics = computeMetrics({ logits, targets, labels, thresholds });
    return { metrics, labels, thresholds, count: predictions.length, failures };
  } finally {
    await predictor.release();
  }
}
