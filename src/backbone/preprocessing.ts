// The input size and normalisation a backbone expects, read from a metadata file beside the model
// or given as options.
import { readFile } from 'node:fs/promises';

/** Input size and per-channel normalisation of a backbone, with mean and std on the 0..1 pixel scale. */
export interface Preprocessing {
  /** Side of the square input in pixels. */
  inputSize: number;
  mean: [number, number, number];
  std: [number, number, number];
}

/** Error for a missing or invalid preprocessing description. */
export class PreprocessingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PreprocessingError';
  }
}

/**
 * Returns the metadata file paths checked beside a model: `model.json` and `model.onnx.json` for
 * `model.onnx`.
 */
export function metadataPathsFor(modelPath: string): string[] {
  const withoutExtension = modelPath.replace(/\.onnx$/i, '');
  return [`${withoutExtension}.json`, `${modelPath}.json`];
}

/** Validates a parsed preprocessing object; `source` names where it came from in error messages. */
export function parsePreprocessing(value: unknown, source: string): Partial<Preprocessing> {
  if (typeof value !== 'object' || value === null) {
    throw new PreprocessingError(`${source}: expected a JSON object with inputSize, mean and std.`);
  }
  let record = value as Record<string, unknown>;
  // multitag's own model.json nests mean and std under normalization, so a trained model works as a backbone.
  if (record.format === 'multitag-model' && typeof record.normalization === 'object' && record.normalization !== null) {
    record = { inputSize: record.inputSize, ...(record.normalization as Record<string, unknown>) };
  }
  const result: Partial<Preprocessing> = {};
  if (record.inputSize !== undefined) {
    if (!Number.isInteger(record.inputSize) || (record.inputSize as number) < 8) {
      throw new PreprocessingError(`${source}: inputSize must be an integer of at least 8, got ${JSON.stringify(record.inputSize)}.`);
    }
    result.inputSize = record.inputSize as number;
  }
  for (const key of ['mean', 'std'] as const) {
    if (record[key] === undefined) {
      continue;
    }
    result[key] = parseChannelTriple(record[key], `${source}: ${key}`, key === 'std');
  }
  return result;
}

/** Parses three per-channel numbers from an array or a comma-separated string; one number is repeated. */
export function parseChannelTriple(value: unknown, what: string, positive: boolean): [number, number, number] {
  const items = typeof value === 'string' ? value.split(',').map((part) => Number(part.trim())) : value;
  if (!Array.isArray(items) || (items.length !== 1 && items.length !== 3) || items.some((item) => typeof item !== 'number' || !Number.isFinite(item))) {
    throw new PreprocessingError(`${what} must be one number or three comma-separated numbers (R,G,B), got ${JSON.stringify(value)}.`);
  }
  const triple = (items.length === 1 ? [items[0], items[0], items[0]] : items) as [number, number, number];
  if (positive && triple.some((item) => item <= 0)) {
    throw new PreprocessingError(`${what} values must be positive, got ${JSON.stringify(value)}.`);
  }
  // Values above 1 are almost always given on the 0..255 scale, which would silently ruin training.
  if (triple.some((item) => item > 1 || item < 0)) {
    throw new PreprocessingError(`${what} values are on the 0..1 pixel scale and must lie from 0 to 1, got ${JSON.stringify(value)}. Divide values on the 0..255 scale by 255.`);
  }
  return triple;
}

/** Reads the first metadata file found beside `modelPath`, or returns undefined when there is none. */
export async function readPreprocessingBeside(modelPath: string): Promise<{ path: string; preprocessing: Partial<Preprocessing> } | undefined> {
  for (const path of metadataPathsFor(modelPath)) {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch {
      continue;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new PreprocessingError(`${path} is not valid JSON (${(error as Error).message}); fix or delete it.`);
    }
    return { path, preprocessing: parsePreprocessing(parsed, path) };
  }
  return undefined;
}
