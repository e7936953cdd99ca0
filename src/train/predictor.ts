// Loads a trained model (model.onnx + model.json from a run or export folder) and tags images.
import { readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { inferenceSessionOptions, type SessionSettings } from '../backbone/backbone.js';
import type { ProgressCallback } from '../events.js';
import { decodeEvalView, ImageDecodeError, type DecodeOptions, type RgbImage } from '../image/decode.js';
import { normalizeBatch, type ImageSettings } from './images.js';
import { mapConcurrent } from './parallel.js';
import { readModelMetadata, RunFolderError, runFiles, type ModelMetadata } from './runFolder.js';

/** File extensions that `predict` picks up when given a folder. */
export const predictableExtensions = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif']);

/** Outputs of the model for a batch of images, row-major [count, labels]. */
export interface ModelOutputs {
  logits: Float32Array;
  probabilities: Float32Array;
}

/** The prediction for one image file. */
export interface FilePrediction {
  file: string;
  /** Probability per label, in the model's label order. */
  probabilities: Float32Array;
  logits: Float32Array;
}

/** An image that could not be tagged, with the reason. */
export interface FileFailure {
  file: string;
  message: string;
}

/** Runs a trained model on images. */
export class Predictor {
  private constructor(
    private readonly session: ort.InferenceSession,
    /** Labels, thresholds and preprocessing of the model. */
    readonly metadata: ModelMetadata,
    private readonly images: ImageSettings,
  ) {}

  /** Opens model.onnx and model.json in `modelDir`. */
  static async load(modelDir: string, settings: SessionSettings & { decode?: DecodeOptions } = {}): Promise<Predictor> {
    const metadata = await readModelMetadata(modelDir);
    const modelPath = join(modelDir, runFiles.model);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(modelPath, inferenceSessionOptions(settings));
    } catch (error) {
      throw new RunFolderError(`Could not load ${modelPath} (${(error as Error).message.split('\n')[0]}). The file may be missing or damaged; export or train the model again.`);
    }
    const images: ImageSettings = {
      inputSize: metadata.inputSize,
      normalization: metadata.normalization,
      augment: { rotationDegrees: 0, scale: [1, 1], ratio: [1, 1], flipProbability: 0 },
      decode: settings.decode ?? {},
    };
    return new Predictor(session, metadata, images);
  }

  /** Runs the model on evaluation views. */
  async runViews(views: readonly RgbImage[]): Promise<ModelOutputs> {
    const size = this.metadata.inputSize;
    const input = new ort.Tensor('float32', normalizeBatch(views, this.images), [views.length, 3, size, size]);
    const outputs = await this.session.run({ [this.metadata.inputName]: input });
    return {
      logits: outputs[this.metadata.outputs.logits].data as Float32Array,
      probabilities: outputs[this.metadata.outputs.probabilities].data as Float32Array,
    };
  }

  /** Decodes the evaluation view of one file. */
  decodeView(path: string): Promise<RgbImage> {
    return decodeEvalView(path, this.metadata.inputSize, this.images.decode);
  }

  /**
   * Tags image files in batches. Files that cannot be decoded are returned as failures with the
   * reason instead of stopping the whole run.
   */
  async predictFiles(paths: readonly string[], options: { batchSize?: number; onProgress?: ProgressCallback } = {}): Promise<{ predictions: FilePrediction[]; failures: FileFailure[] }> {
    const batchSize = options.batchSize ?? 32;
    const labelCount = this.metadata.labels.length;
    const predictions: FilePrediction[] = [];
    const failures: FileFailure[] = [];

    for (let start = 0; start < paths.length; start += batchSize) {
      const batchPaths = paths.slice(start, start + batchSize);
      const decoded = await mapConcurrent(batchPaths, 8, async (path) => {
        try {
          return await this.decodeView(path);
        } catch (error) {
          if (error instanceof ImageDecodeError) {
            failures.push({ file: path, message: error.message });
            return undefined;
          }
          throw error;
        }
      });
      const goodPaths = batchPaths.filter((_, index) => decoded[index] !== undefined);
      const views = decoded.filter((view): view is RgbImage => view !== undefined);
      if (views.length > 0) {
        const outputs = await this.runViews(views);
        goodPaths.forEach((file, row) => {
          predictions.push({
            file,
            probabilities: outputs.probabilities.slice(row * labelCount, (row + 1) * labelCount),
            logits: outputs.logits.slice(row * labelCount, (row + 1) * labelCount),
          });
        });
      }
      options.onProgress?.({ task: 'predict', done: Math.min(start + batchSize, paths.length), total: paths.length, unit: 'images' });
    }
    return { predictions, failures };
  }

  /** Frees the native session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Error for a predict path that does not exist or contains no images. */
export class InputPathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputPathError';
  }
}

/** Expands files and folders (searched recursively, sorted by path) into the image files to tag. */
export async function collectImagePaths(inputs: readonly string[]): Promise<string[]> {
  const files: string[] = [];
  for (const input of inputs) {
    const info = await stat(input).catch(() => undefined);
    if (!info) {
      throw new InputPathError(`${input} was not found. Pass an image file or a folder of images.`);
    }
    if (info.isFile()) {
      files.push(input);
      continue;
    }
    const entries = await readdir(input, { recursive: true, withFileTypes: true });
    const found: string[] = [];
    for (const entry of entries) {
      if (!predictableExtensions.has(extname(entry.name).toLowerCase())) {
        continue;
      }
      const file = join(entry.parentPath ?? entry.path, entry.name);
      // A symbolic link counts when it points to a file; links to folders are not followed.
      if (entry.isFile() || (entry.isSymbolicLink() && (await stat(file).catch(() => undefined))?.isFile())) {
        found.push(file);
      }
    }
    found.sort();
    if (found.length === 0) {
      throw new InputPathError(`Folder ${input} contains no images (looked for ${[...predictableExtensions].join(', ')}).`);
    }
    files.push(...found);
  }
  return files;
}
