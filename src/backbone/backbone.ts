// Opens a backbone ONNX file as an onnxruntime session that maps normalised images to pooled features.
import { stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import type { ProgressCallback } from '../events.js';
import { encodeModel, readModel, valueInfoShape, type ModelProto } from '../onnx/model.js';
import { catalog as defaultCatalog, findCatalogEntry, type CatalogEntry } from './catalog.js';
import { cachedDownload, sha256OfFile } from './download.js';
import { cutAtTensor, findFeatureTensor } from './featureGraph.js';
import { PreprocessingError, readPreprocessingBeside, type Preprocessing } from './preprocessing.js';

/** Error for a backbone that cannot be found or opened. */
export class BackboneError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackboneError';
  }
}

/** A backbone request: a catalog name or a path, with optional overrides. */
export interface BackboneRequest {
  /** A catalog name such as `mobilenet_v2`, or a path to an .onnx file. */
  source: string;
  /** Name of the pooled feature tensor; found automatically when omitted. */
  featureNode?: string;
  /** Overrides of the input size and normalisation. */
  preprocessing?: Partial<Preprocessing>;
  /** Cache folder for downloaded backbones. */
  cacheDir?: string;
  /** Catalog to resolve names in; defaults to the built-in one. */
  catalog?: readonly CatalogEntry[];
  /** Receives download progress. */
  onProgress?: ProgressCallback;
}

/** A backbone located on disk, with everything needed to run it. */
export interface ResolvedBackbone {
  /** Absolute or working-directory-relative path of the ONNX file. */
  path: string;
  /** SHA-256 of the ONNX file, recorded in run configs so a run can check it reloads the same weights. */
  sha256: string;
  /** Catalog name when the backbone came from the catalog. */
  catalogName?: string;
  /** Name of the image input. */
  inputName: string;
  /** Name of the pooled feature tensor. */
  featureName: string;
  preprocessing: Preprocessing;
  /** The decoded full model. */
  model: ModelProto;
}

/**
 * Locates a backbone, downloading a catalog entry into the cache when needed, and works out its input,
 * feature tensor and preprocessing. Explicit overrides win over a metadata file beside the model,
 * which wins over the catalog entry and the model's declared input shape.
 */
export async function resolveBackbone(request: BackboneRequest): Promise<ResolvedBackbone> {
  const entry = findCatalogEntry(request.source, request.catalog ?? defaultCatalog);
  let path: string;
  if (entry) {
    path = await cachedDownload(entry.url, `${entry.name}-${entry.sha256.slice(0, 12)}.onnx`, {
      sha256: entry.sha256,
      expectedBytes: entry.bytes,
      cacheDir: request.cacheDir,
      onProgress: request.onProgress,
    });
  } else {
    path = request.source;
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) {
      const names = (request.catalog ?? defaultCatalog).map((item) => item.name).join(', ');
      throw new BackboneError(`Backbone ${path} was not found. Pass the path of an .onnx file, or a catalog name (${names}).`);
    }
  }

  const model = await readModel(path);
  const graph = model.graph!;
  const initializerNames = new Set((graph.initializer ?? []).map((tensor) => tensor.name));
  const inputs = (graph.input ?? []).filter((input) => !initializerNames.has(input.name));
  if (inputs.length !== 1) {
    throw new BackboneError(`Backbone ${path} has ${inputs.length} inputs (${inputs.map((input) => input.name).join(', ')}); multitag needs a model with one image input.`);
  }
  const input = inputs[0];
  const inputShape = valueInfoShape(input);
  const featureName = findFeatureTensor(model, path, request.featureNode);

  const beside = await readPreprocessingBeside(path);
  const declaredSize = inputShape.length === 4 && inputShape[2] > 0 && inputShape[2] === inputShape[3] ? inputShape[2] : undefined;
  const merged: Partial<Preprocessing> = {
    ...(declaredSize ? { inputSize: declaredSize } : {}),
    ...(entry?.preprocessing ?? {}),
    ...(beside?.preprocessing ?? {}),
    ...definedOnly(request.preprocessing ?? {}),
  };
  if (merged.inputSize === undefined || merged.mean === undefined || merged.std === undefined) {
    const missing = (['inputSize', 'mean', 'std'] as const).filter((key) => merged[key] === undefined);
    throw new PreprocessingError(
      `The normalisation of backbone ${path} is unknown (missing ${missing.join(', ')}). Pass --mean and --std on the 0..1 pixel scale ` +
        `(ImageNet-trained torchvision models: --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225; models taking pixel/127.5-1: --mean 0.5 --std 0.5)` +
        `${merged.inputSize === undefined ? ' and --input-size' : ''}, or write them as {"inputSize":224,"mean":[...],"std":[...]} into ${path}.json.`,
    );
  }

  return {
    path,
    sha256: entry?.sha256 ?? (await sha256OfFile(path)),
    catalogName: entry?.name,
    inputName: input.name!,
    featureName,
    preprocessing: merged as Preprocessing,
    model,
  };
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, item]) => item !== undefined)) as Partial<T>;
}

/** Options for onnxruntime sessions. */
export interface SessionSettings {
  /** Intra-op threads; defaults to the number of logical cores. */
  threads?: number;
}

/** Builds the onnxruntime session options multitag uses for inference. */
export function inferenceSessionOptions(settings: SessionSettings = {}): ort.InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: settings.threads ?? availableParallelism(),
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
}

/** Runs the feature part of a backbone on batches of normalised images. */
export class FeatureExtractor {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly backbone: ResolvedBackbone,
    /** Length of one feature vector. */
    readonly featureSize: number,
  ) {}

  /** Creates a session for the backbone cut at its feature tensor, and measures the feature size. */
  static async create(backbone: ResolvedBackbone, settings: SessionSettings = {}): Promise<FeatureExtractor> {
    const featureModel = cutAtTensor(backbone.model, backbone.featureName);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(encodeModel(featureModel), inferenceSessionOptions(settings));
    } catch (error) {
      throw new BackboneError(`onnxruntime could not load backbone ${backbone.path} cut at ${backbone.featureName}: ${(error as Error).message}`);
    }

    const size = backbone.preprocessing.inputSize;
    const probe = new ort.Tensor('float32', new Float32Array(3 * size * size), [1, 3, size, size]);
    let featureSize: number;
    try {
      const output = (await session.run({ [backbone.inputName]: probe }))[backbone.featureName];
      featureSize = output.data.length;
    } catch (error) {
      throw new BackboneError(`Backbone ${backbone.path} failed on a 1x3x${size}x${size} input: ${(error as Error).message}. Check --input-size.`);
    }
    return new FeatureExtractor(session, backbone, featureSize);
  }

  /** Computes features [count, featureSize] for `count` normalised images stored as NCHW in `images`. */
  async run(images: Float32Array, count: number): Promise<Float32Array> {
    const size = this.backbone.preprocessing.inputSize;
    const input = new ort.Tensor('float32', images.subarray(0, count * 3 * size * size), [count, 3, size, size]);
    const output = (await this.session.run({ [this.backbone.inputName]: input }))[this.backbone.featureName];
    return output.data as Float32Array;
  }

  private released = false;

  /** Frees the native session; later calls do nothing. */
  async release(): Promise<void> {
    if (!this.released) {
      this.released = true;
      await this.session.release();
    }
  }
}
