// Reading the parts of a run folder that reports need: config.json, log.csv and metrics.json.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Preprocessing } from '../backbone/preprocessing.js';
import type { DatasetLayout } from '../data/dataset.js';
import type { MultiLabelMetrics } from '../metrics/index.js';
import { recordColumns, type EpochRecord, type PhaseName } from '../train/record.js';
import { RunFolderError, runFiles } from '../train/runFolder.js';

/** The fields of a run's config.json that reports use. The file contains more. */
export interface RunConfigSummary {
  format: 'multitag-run';
  createdAt: string;
  labels: string[];
  backbone: {
    source: string;
    /** Absolute path of the backbone ONNX file the run was trained on. */
    path: string;
    sha256: string;
    featureName: string;
    featureSize: number;
    preprocessing: Preprocessing;
  };
  data: { dir: string; trainCount: number; testCount: number; layout?: Partial<DatasetLayout> };
  training: { seed: number; maxPixels: number; layout?: Partial<DatasetLayout> } & Record<string, unknown>;
}

/** Test metrics of a run at one set of thresholds, as stored in metrics.json. */
export interface StoredMetrics {
  /** Name of the thresholds, for example "threshold 0.5" or "tuned thresholds". */
  title: string;
  metrics: MultiLabelMetrics;
}

/** Reads and checks config.json of a run folder. */
export async function readRunConfigSummary(runDir: string): Promise<RunConfigSummary> {
  const path = join(runDir, runFiles.config);
  const value = await readJsonFile(path, `${path} was not found, so ${runDir} is not a multitag run folder. Pass the --out folder of multitag train.`);
  const config = value as RunConfigSummary;
  const valid =
    config !== null &&
    typeof config === 'object' &&
    config.format === 'multitag-run' &&
    Array.isArray(config.labels) &&
    typeof config.backbone?.path === 'string' &&
    typeof config.backbone.featureName === 'string' &&
    typeof config.backbone.preprocessing?.inputSize === 'number' &&
    typeof config.data?.dir === 'string' &&
    Number.isSafeInteger(config.training?.seed);
  if (!valid) {
    throw new RunFolderError(`${path} is not a multitag run config (format, labels, backbone, data or training.seed missing). Pass the --out folder of multitag train.`);
  }
  return config;
}

/** Returns the file names the run used inside its data folder. */
export function dataLayoutOf(config: RunConfigSummary): Partial<DatasetLayout> {
  return config.training.layout ?? config.data.layout ?? {};
}

/**
 * Reads the test metrics of metrics.json, one entry per set of thresholds in it, or returns []
 * when training has not written the file yet.
 */
export async function readRunMetrics(runDir: string): Promise<StoredMetrics[]> {
  const path = join(runDir, runFiles.metrics);
  const text = await readFile(path, 'utf8').catch(() => undefined);
  if (text === undefined) {
    return [];
  }
  const stored = parseJson(text, path) as Record<string, unknown>;
  // Runs write either { threshold, test } or, with tuned per-label thresholds, { testAtHalf, testAtTuned }.
  const candidates: [string, string][] = [
    ['test', `threshold ${typeof stored?.threshold === 'number' ? stored.threshold : 0.5}`],
    ['testAtHalf', 'threshold 0.5'],
    ['testAtTuned', 'tuned thresholds'],
  ];
  const found = candidates
    .filter(([key]) => typeof (stored?.[key] as MultiLabelMetrics | undefined)?.microF1 === 'number')
    .map(([key, title]) => ({ title, metrics: stored[key] as MultiLabelMetrics }));
  if (found.length === 0) {
    throw new RunFolderError(`${path} is invalid: test metrics are missing (test, testAtHalf or testAtTuned with microF1). Delete it, or train the run again.`);
  }
  return found;
}

/** Reads log.csv of a run folder into epoch records, or returns [] when the file does not exist. */
export async function readTrainingLog(path: string): Promise<EpochRecord[]> {
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') {
      return undefined;
    }
    throw error;
  });
  return text === undefined ? [] : parseTrainingLog(text, path);
}

/** Parses the CSV that CsvLogger writes. `source` names the file in error messages. */
export function parseTrainingLog(text: string, source: string): EpochRecord[] {
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== '');
  if (lines.length === 0) {
    return [];
  }
  const header = lines[0].split(',');
  const columnIndex = new Map(header.map((name, index) => [name, index]));
  const missing = recordColumns.filter((column) => !columnIndex.has(column));
  if (missing.length > 0) {
    throw new RunFolderError(`${source} has no column ${missing.join(', ')}, so it is not a multitag training log. Restore it from the run folder of multitag train.`);
  }

  return lines.slice(1).map((line, row) => {
    const cells = line.split(',');
    const cell = (column: keyof EpochRecord): string => cells[columnIndex.get(column)!] ?? '';
    const number = (column: keyof EpochRecord): number => {
      const value = Number(cell(column));
      // CsvLogger writes NaN for a metric without a value, such as mAP when no test image is positive.
      if (cell(column) === '' || (Number.isNaN(value) && cell(column) !== 'NaN')) {
        throw new RunFolderError(`${source}:${row + 2}: ${column} is "${cell(column)}", not a number. Restore the file from the run folder of multitag train.`);
      }
      return value;
    };
    return {
      phase: cell('phase') as PhaseName,
      epoch: number('epoch'),
      phaseEpoch: number('phaseEpoch'),
      trainCost: number('trainCost'),
      testCost: number('testCost'),
      testMicroF1: number('testMicroF1'),
      testMacroF1: number('testMacroF1'),
      testMAP: number('testMAP'),
      learningRate: number('learningRate'),
      seconds: number('seconds'),
    };
  });
}

async function readJsonFile(path: string, missingMessage: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new RunFolderError(missingMessage);
    }
    throw error;
  }
  return parseJson(text, path);
}

function parseJson(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new RunFolderError(`${path} is not valid JSON (${(error as Error).message}). Restore it, or train the run again.`);
  }
}
