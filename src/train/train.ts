// The training entry point: validate the data, open the backbone, run the phases with their callbacks,
// and leave a complete run folder behind.
import { join, resolve } from 'node:path';
import { FeatureExtractor, resolveBackbone, type ResolvedBackbone } from '../backbone/backbone.js';
import { labelMatrix, loadDataset } from '../data/dataset.js';
import { silentLog, silentProgress, type LogCallback, type ProgressCallback } from '../events.js';
import { writeJsonAtomic } from '../files/atomic.js';
import { writeSafetensors, type TensorEntry } from '../files/safetensors.js';
import { Random } from '../image/random.js';
import { computeMetrics, type MultiLabelMetrics } from '../metrics/index.js';
import { AdaptationRunner, evalViewFeatures } from './adaptation.js';
import { AdamW, defaultAdamW } from './adamw.js';
import { CsvLogger, EarlyStopping, EpochLogger, PeriodicCheckpoint, SaveBest, TerminateOnNonFinite, type ParameterSnapshot, type TrainingCallback } from './callbacks.js';
import { createHead, headLogits } from './head.js';
import { loadEvalViews, loadTrainImages, type ImageSettings } from './images.js';
import { headBiasName, headWeightName } from './inferenceModel.js';
import type { TrainOptions } from './options.js';
import { runPhase } from './phase.js';
import type { EpochRecord } from './record.js';
import { createRunFolder, runFiles, saveBestModel } from './runFolder.js';

/** Callbacks that receive the library's logs and progress. */
export interface TrainHooks {
  log?: LogCallback;
  onProgress?: ProgressCallback;
  /** Extra callbacks run after the built-in ones at every epoch, for example to redraw plots. */
  callbacks?: readonly TrainingCallback[];
}

/** Outcome of a training run. */
export interface TrainResult {
  runDir: string;
  labels: string[];
  records: EpochRecord[];
  /** The record of the epoch whose parameters were kept. */
  best: EpochRecord;
  /** Test metrics of the kept model at threshold 0.5. */
  testMetrics: MultiLabelMetrics;
  /** Wall time of the whole run in seconds. */
  seconds: number;
}

/** Trains a multi-label classifier and writes its run folder. */
export async function train(options: TrainOptions, hooks: TrainHooks = {}): Promise<TrainResult> {
  const log = hooks.log ?? silentLog;
  const onProgress = hooks.onProgress ?? silentProgress;
  const started = performance.now();

  // Validate everything that can be wrong with the input before any file is written.
  const dataset = await loadDataset(options.dataDir, options.layout);
  for (const warning of dataset.warnings) {
    log('warn', `${warning.file}${warning.line ? `:${warning.line}` : ''}: ${warning.message}`);
  }
  const backbone = await resolveBackbone({ ...options.backbone, onProgress: options.backbone.onProgress ?? onProgress });
  await createRunFolder(options.outDir);
  const labels = dataset.train.labels;
  log('info', `training on ${dataset.train.items.length} images, testing on ${dataset.test.items.length}, labels: ${labels.join(', ')}`);

  const extractor = await FeatureExtractor.create(backbone, { threads: options.threads });
  log('info', `backbone ${backbone.path}: input ${backbone.inputName} ${backbone.preprocessing.inputSize}px, features ${backbone.featureName} (${extractor.featureSize})`);
  const config = runConfig(options, backbone, labels, extractor.featureSize, dataset.train.items.length, dataset.test.items.length);
  await writeJsonAtomic(join(options.outDir, runFiles.config), config);

  const images: ImageSettings = {
    inputSize: backbone.preprocessing.inputSize,
    normalization: { mean: backbone.preprocessing.mean, std: backbone.preprocessing.std },
    augment: options.augment,
    decode: { maxPixels: options.maxPixels },
  };

  try {
    const trainImages = await loadTrainImages(dataset.train.items.map((item) => item.path), images, onProgress);
    const testViews = await loadEvalViews(dataset.test.items.map((item) => item.path), images, 'decode test images', onProgress);
    const testFeatures = await evalViewFeatures(extractor, testViews, images, options.batchSize, 'features test', onProgress);
    const testTargets = labelMatrix(dataset.test);

    const random = new Random(options.seed);
    const headRandom = random.fork();
    const shuffleRandom = random.fork();
    const augmentRandom = random.fork();
    const head = createHead(extractor.featureSize, labels.length, headRandom);
    const optimizer = new AdamW({ ...defaultAdamW, learningRate: options.learningRate, weightDecay: options.weightDecay });

    const runner = new AdaptationRunner({
      extractor,
      head,
      optimizer,
      trainImages,
      trainTargets: labelMatrix(dataset.train),
      testFeatures,
      testCount: testViews.length,
      images,
      batchSize: options.batchSize,
      shuffleRandom,
      augmentRandom,
      cacheViews: options.cacheViews,
    });
    await runner.prepare(onProgress);

    const thresholds = labels.map(() => 0.5);
    const csvLogger = new CsvLogger(join(options.outDir, runFiles.log));
    const saveBest = new SaveBest(options.monitor, (parameters) => saveBestModel(options.outDir, backbone, parameters, labels, extractor.featureSize, thresholds));
    const earlyStopping = new EarlyStopping(options.monitor, options.patience);
    const saveCheckpoint = async (): Promise<void> => {
      const tensors = new Map<string, TensorEntry>();
      for (const [name, data] of runner.parameters()) {
        tensors.set(name, { shape: [data.length], data });
      }
      for (const [name, moments] of optimizer.moments) {
        tensors.set(`adamw.first/${name}`, { shape: [moments.first.length], data: moments.first });
        tensors.set(`adamw.second/${name}`, { shape: [moments.second.length], data: moments.second });
      }
      const state = {
        epoch: csvLogger.records.length,
        phase: runner.phase,
        optimizerStep: optimizer.step,
        earlyStopping: earlyStopping.getState(),
        saveBest: saveBest.getState(),
        random: { shuffle: shuffleRandom.getState(), augment: augmentRandom.getState() },
      };
      await writeSafetensors(join(options.outDir, runFiles.checkpoint), { tensors, metadata: { format: 'multitag-checkpoint', state: JSON.stringify(state) } });
    };

    await runPhase({
      runner,
      callbacks: [new TerminateOnNonFinite(), new EpochLogger(), csvLogger, saveBest, earlyStopping, new PeriodicCheckpoint(options.checkpointEvery), ...(hooks.callbacks ?? [])],
      labels,
      testTargets,
      maxEpochs: options.epochs,
      epochsBefore: 0,
      phaseEpochsDone: 0,
      saveCheckpoint,
      log,
      onProgress,
    });

    // Continue with the parameters of the best epoch, as the recipe's callback restores them.
    restoreParameters(runner.parameters(), saveBest.bestParameters);
    const testMetrics = computeMetrics({ logits: headLogits(head, testFeatures, testViews.length), targets: testTargets, labels, thresholds });
    await writeJsonAtomic(join(options.outDir, runFiles.metrics), { threshold: 0.5, test: testMetrics });

    const best = csvLogger.records.find((record) => record.epoch === saveBest.bestEpoch) ?? csvLogger.records[csvLogger.records.length - 1];
    return { runDir: resolve(options.outDir), labels, records: csvLogger.records, best, testMetrics, seconds: (performance.now() - started) / 1000 };
  } finally {
    await extractor.release();
  }
}

function restoreParameters(live: ParameterSnapshot, saved: ParameterSnapshot | undefined): void {
  if (!saved) {
    return;
  }
  for (const [name, values] of saved) {
    live.get(name)?.set(values);
  }
}

function runConfig(options: TrainOptions, backbone: ResolvedBackbone, labels: string[], featureSize: number, trainCount: number, testCount: number) {
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
    data: { dir: resolve(options.dataDir), layout: options.layout ?? {}, trainCount, testCount },
    training: {
      epochs: options.epochs,
      batchSize: options.batchSize,
      learningRate: options.learningRate,
      weightDecay: options.weightDecay,
      optimizer: 'AdamW',
      betas: [defaultAdamW.beta1, defaultAdamW.beta2],
      patience: options.patience,
      monitor: options.monitor,
      checkpointEvery: options.checkpointEvery,
      seed: options.seed,
      cacheViews: options.cacheViews,
      augment: options.augment,
      maxPixels: options.maxPixels,
      threads: options.threads ?? null,
    },
  };
}
