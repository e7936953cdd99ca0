// config.json of a run: everything needed to reload the model and to resume or repeat the run.
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { ResolvedBackbone } from '../backbone/backbone.js';
import { defaultAdamW } from './adamw.js';
import type { SkippedImage } from './badImages.js';
import { headBiasName, headWeightName } from './inferenceModel.js';
import type { TrainOptions } from './options.js';
import { RunFolderError, runFiles } from './runFolder.js';

/** Training options as stored in config.json: paths absolute, no callbacks. */
export type StoredTrainOptions = Omit<TrainOptions, 'backbone'> & { backbone: Omit<TrainOptions['backbone'], 'onProgress' | 'catalog'> };

/** Content of config.json. */
export interface RunConfig {
  format: 'multitag-run';
  version: 1;
  createdAt: string;
  labels: string[];
  backbone: {
    source: string;
    path: string;
    sha256: string;
    catalogName: string | null;
    inputName: string;
    featureName: string;
    featureSize: number;
    preprocessing: ResolvedBackbone['preprocessing'];
  };
  head: { type: 'linear'; weight: string; bias: string; activation: 'sigmoid'; loss: string };
  optimizer: { name: 'AdamW'; betas: [number, number]; epsilon: number };
  data: { dir: string; trainCount: number; testCount: number; skipped: SkippedImage[] };
  /** Every training option, so `--resume` continues with the same settings. */
  training: StoredTrainOptions;
}

/** Builds config.json for a run. */
export function buildRunConfig(
  options: TrainOptions,
  backbone: ResolvedBackbone,
  labels: string[],
  featureSize: number,
  trainCount: number,
  testCount: number,
  skipped: SkippedImage[],
): RunConfig {
  const { onProgress: _onProgress, catalog: _catalog, ...backboneRequest } = options.backbone;
  return {
    format: 'multitag-run',
    version: 1,
    createdAt: new Date().toISOString(),
    labels,
    backbone: {
      source: options.backbone.source,
      path: resolve(backbone.path),
      sha256: backbone.sha256,
      catalogName: backbone.catalogName ?? null,
      inputName: backbone.inputName,
      featureName: backbone.featureName,
      featureSize,
      preprocessing: backbone.preprocessing,
    },
    head: { type: 'linear', weight: headWeightName, bias: headBiasName, activation: 'sigmoid', loss: 'binary cross-entropy from logits' },
    optimizer: { name: 'AdamW', betas: [defaultAdamW.beta1, defaultAdamW.beta2], epsilon: defaultAdamW.epsilon },
    data: { dir: resolve(options.dataDir), trainCount, testCount, skipped },
    training: {
      ...options,
      dataDir: resolve(options.dataDir),
      outDir: resolve(options.outDir),
      backbone: { ...backboneRequest, source: catalogOrAbsolute(options.backbone.source, backbone) },
    },
  };
}

function catalogOrAbsolute(source: string, backbone: ResolvedBackbone): string {
  return backbone.catalogName ? source : resolve(source);
}

/** Reads config.json of a run folder. */
export async function readRunConfig(runDir: string): Promise<RunConfig> {
  const path = join(runDir, runFiles.config);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new RunFolderError(`${path} was not found, so ${runDir} is not a multitag run folder. Pass the --out folder of an earlier multitag train.`);
  }
  let config: RunConfig;
  try {
    config = JSON.parse(text) as RunConfig;
  } catch (error) {
    throw new RunFolderError(`${path} is not valid JSON (${(error as Error).message}). The run cannot be resumed; start a new run.`);
  }
  if (config.format !== 'multitag-run' || !config.training) {
    throw new RunFolderError(`${path} is not a multitag run config. Pass the --out folder of an earlier multitag train.`);
  }
  return config;
}
