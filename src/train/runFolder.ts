// The files of a run folder, and reading and writing them. Every file is written atomically.
import { constants } from 'node:fs';
import { access, mkdir, readdir, readFile, rmdir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { ResolvedBackbone } from '../backbone/backbone.js';
import type { Normalization } from '../image/normalize.js';
import { writeFileAtomic, writeJsonAtomic } from '../files/atomic.js';
import { writeSafetensors, type TensorEntry } from '../files/safetensors.js';
import { encodeModel } from '../onnx/model.js';
import type { ParameterSnapshot } from './callbacks.js';
import { buildInferenceModel, headBiasName, headWeightName, logitsOutput, probabilitiesOutput } from './inferenceModel.js';

/** File names inside a run folder. */
export const runFiles = {
  /** Everything needed to reload the model and repeat the run. */
  config: 'config.json',
  /** One row per epoch. */
  log: 'log.csv',
  /** Trainable parameters of the best epoch. */
  best: 'best.safetensors',
  /** Full training state of the last checkpoint, for --resume. */
  checkpoint: 'checkpoint.safetensors',
  /** The best model as a plain inference ONNX. */
  model: 'model.onnx',
  /** Labels, thresholds and preprocessing of model.onnx. */
  modelMetadata: 'model.json',
  /** Test metrics of the final model. */
  metrics: 'metrics.json',
} as const;

/** Metadata that `predict`, `evaluate`, `serve` and browsers need to use model.onnx. */
export interface ModelMetadata {
  format: 'multitag-model';
  version: 1;
  labels: string[];
  /** Decision threshold per label, on the probability scale. */
  thresholds: number[];
  inputName: string;
  /** Side of the square input in pixels; images are resized so the short side is inputSize * 230 / 224, then centre-cropped. */
  inputSize: number;
  /** Per-channel mean and std on the 0..1 pixel scale; the input is (pixel / 255 - mean) / std, NCHW, RGB. */
  normalization: Normalization;
  outputs: { logits: string; probabilities: string };
}

/** Error for a run folder that cannot be used. */
export class RunFolderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunFolderError';
  }
}

/**
 * Checks that the run folder is new or empty, so no earlier run is overwritten, and that files can be
 * created there, so a read-only or foreign path fails before the images are decoded.
 */
export async function checkRunFolder(dir: string): Promise<void> {
  const existing = await stat(dir).catch(() => undefined);
  if (existing && !existing.isDirectory()) {
    throw new RunFolderError(`--out ${dir} is a file, not a folder. Choose a folder path for the run.`);
  }
  if (existing) {
    const entries = await readdir(dir);
    if (entries.includes(runFiles.metrics)) {
      throw new RunFolderError(`--out ${dir} contains a finished run (it has ${runFiles.metrics}). Choose a new folder. To use that run, pass it to multitag evaluate, predict or serve with --model ${dir}.`);
    }
    if (entries.length > 0) {
      throw new RunFolderError(`--out ${dir} is not empty (it contains ${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', ...' : ''}). Choose a new folder, or continue that run with --resume ${dir}.`);
    }
    const problem = await writeProblem(dir);
    if (problem !== undefined) {
      throw new RunFolderError(`--out ${dir} ${problem}. Choose a writable path.`);
    }
    return;
  }

  // The folder will be created inside its nearest existing ancestor, which must be a writable folder.
  const { parent } = await firstMissingFolder(dir);
  const parentStats = await stat(parent).catch(() => undefined);
  if (parentStats !== undefined && !parentStats.isDirectory()) {
    throw new RunFolderError(`Could not create the run folder ${dir}: ${parent} is a file, not a folder. Fix the path or choose another --out folder.`);
  }
  const problem = await writeProblem(parent);
  if (problem !== undefined) {
    throw new RunFolderError(`Could not create the run folder ${dir}: ${parent} ${problem}. Fix the path or choose another --out folder.`);
  }
}

/** Returns the highest missing folder on the path to `dir` and the existing folder that would contain it. */
async function firstMissingFolder(dir: string): Promise<{ missing: string; parent: string }> {
  let missing = resolve(dir);
  while (dirname(missing) !== missing && (await stat(dirname(missing)).catch(() => undefined)) === undefined) {
    missing = dirname(missing);
  }
  return { missing, parent: dirname(missing) };
}

/** Returns why new files cannot be created in the folder `dir`, or undefined when they can. */
async function writeProblem(dir: string): Promise<string | undefined> {
  try {
    await access(dir, constants.W_OK | constants.X_OK);
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EROFS') {
      return 'is on a read-only file system';
    }
    if (code === 'EACCES' || code === 'EPERM') {
      return 'is not writable (permission denied)';
    }
    return `cannot be written (${(error as Error).message})`;
  }
}

/** Creates the run folder after {@link checkRunFolder} has accepted it. */
export async function createRunFolder(dir: string): Promise<void> {
  await checkRunFolder(dir);
  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    const reason = await explainMkdirFailure(dir, error);
    throw new RunFolderError(`Could not create the run folder ${dir}: ${reason}. Fix the path or choose another --out folder.`);
  }
}

/**
 * Describes why a recursive mkdir of `dir` failed. Node 20's recursive mkdir reports ENOENT even when a
 * parent is on a read-only file system, so the first missing folder is created alone to get the real error.
 */
async function explainMkdirFailure(dir: string, error: unknown): Promise<string> {
  const { missing, parent } = await firstMissingFolder(dir);
  let cause = error as NodeJS.ErrnoException;
  try {
    await mkdir(missing);
    await rmdir(missing);
  } catch (single) {
    cause = single as NodeJS.ErrnoException;
  }
  switch (cause.code) {
    case 'ENOTDIR':
      return `${parent} is a file, not a folder`;
    case 'EROFS':
      return `${parent} is on a read-only file system`;
    case 'EACCES':
    case 'EPERM':
      return `permission denied in ${parent}`;
    case 'ENOSPC':
      return 'the disk is full';
    default:
      return cause.message;
  }
}

/** Builds the model metadata for a backbone and labels. */
export function modelMetadata(backbone: ResolvedBackbone, labels: readonly string[], thresholds: readonly number[]): ModelMetadata {
  return {
    format: 'multitag-model',
    version: 1,
    labels: [...labels],
    thresholds: [...thresholds],
    inputName: backbone.inputName,
    inputSize: backbone.preprocessing.inputSize,
    normalization: { mean: backbone.preprocessing.mean, std: backbone.preprocessing.std },
    outputs: { logits: logitsOutput, probabilities: probabilitiesOutput },
  };
}

/** Converts a parameter snapshot to safetensors entries; the head gets its 2-D shape. */
export function snapshotTensors(parameters: ParameterSnapshot, labelCount: number, featureSize: number): Map<string, TensorEntry> {
  const tensors = new Map<string, TensorEntry>();
  for (const [name, data] of parameters) {
    const shape = name === headWeightName ? [labelCount, featureSize] : name === headBiasName ? [labelCount] : [data.length];
    tensors.set(name, { shape, data });
  }
  return tensors;
}

/** Writes the best parameters, the inference ONNX built from them, and its metadata. */
export async function saveBestModel(
  dir: string,
  backbone: ResolvedBackbone,
  parameters: ParameterSnapshot,
  labels: readonly string[],
  featureSize: number,
  thresholds: readonly number[],
): Promise<void> {
  await writeSafetensors(join(dir, runFiles.best), {
    tensors: snapshotTensors(parameters, labels.length, featureSize),
    metadata: { format: 'multitag-best' },
  });
  const model = buildInferenceModel(backbone, parameters, labels.length, featureSize);
  await writeFileAtomic(join(dir, runFiles.model), encodeModel(model));
  await writeJsonAtomic(join(dir, runFiles.modelMetadata), modelMetadata(backbone, labels, thresholds));
}

/** Reads and checks model.json of a run or export folder. */
export async function readModelMetadata(dir: string): Promise<ModelMetadata> {
  const path = join(dir, runFiles.modelMetadata);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    const folder = await stat(dir).catch(() => undefined);
    throw new RunFolderError(
      folder?.isDirectory()
        ? `${dir} holds no ${runFiles.modelMetadata}, so it is not a finished multitag run or export. Pass the --out folder of a training run that saved a best model.`
        : `Model folder ${dir} was not found. Pass the --out folder of a training run, or a folder made by multitag export.`,
    );
  }
  let metadata: ModelMetadata;
  try {
    metadata = JSON.parse(text) as ModelMetadata;
  } catch (error) {
    throw new RunFolderError(`${path} is not valid JSON (${(error as Error).message}). Restore it, or export the model again.`);
  }
  if (metadata.format !== 'multitag-model' || !Array.isArray(metadata.labels) || metadata.thresholds?.length !== metadata.labels.length) {
    throw new RunFolderError(`${path} is not multitag model metadata (format, labels or thresholds missing). Export the model again.`);
  }
  return metadata;
}
