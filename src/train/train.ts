// The training entry point: validate the data, open the backbone, run the phases with their callbacks,
// and leave a complete run folder behind.
import { join, resolve } from 'node:path';
import { FeatureExtractor, resolveBackbone, type ResolvedBackbone } from '../backbone/backbone.js';
import { labelMatrix, loadDataset } from '../data/dataset.js';
import { silentLog, silentProgress, type LogCallback, type ProgressCallback } from '../events.js';
import { writeJsonAtomic } from '../files/atomic.js';
import { Random } from '../image/random.js';
import { computeMetrics, type MultiLabelMetrics } from '../metrics/index.js';
import { AdaptationRunner, evalViewFeatures } from './adaptation.js';
import { cutAtTensor } from '../backbone/featureGraph.js';
import type { RgbImage } from '../image/decode.js';
import { writeCheckpoint } from './checkpoint.js';
import { FinetuneRunner } from './finetune.js';
import { buildInferenceModel } from './inferenceModel.js';
import { runInferenceModel } from './inferenceSession.js';
import { parseUnfreeze, selectTrainable, weightedLayers } from './unfreeze.js';
import { AdamW, defaultAdamW } from './adamw.js';
import { CsvLogger, EarlyStopping, EpochLogger, PeriodicCheckpoint, SaveBest, TerminateOnNonFinite, type ParameterSnapshot, type TrainingCallback } from './callbacks.js';
import { createHead, headLogits, type LinearHead } from './head.js';
import { loadEvalViews, loadTrainImages, type ImageSettings } from './images.js';
import { headBiasName, headWeightName } from './inferenceModel.js';
import type { TrainOptions } from './options.js';
import { copyParameters, runPhase, type EpochRunner } from './phase.js';
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
    let currentRunner: EpochRunner = runner;
    const saveCheckpoint = (): Promise<void> =>
      writeCheckpoint(join(options.outDir, runFiles.checkpoint), currentRunner, optimizer, {
        epoch: csvLogger.records.length,
        phase: currentRunner.phase,
        optimizerStep: optimizer.step,
        earlyStopping: earlyStopping.getState(),
        saveBest: saveBest.getState(),
        random: { shuffle: shuffleRandom.getState(), augment: augmentRandom.getState() },
      });
    const callbacks = [
      new TerminateOnNonFinite(),
      new EpochLogger(),
      csvLogger,
      saveBest,
      earlyStopping,
      new PeriodicCheckpoint(options.checkpointEvery),
      ...(hooks.callbacks ?? []),
    ];
    const loop = { callbacks, labels, testTargets, saveCheckpoint, log, onProgress, phaseEpochsDone: 0 };

    const adaptation = await runPhase({ ...loop, runner, maxEpochs: options.epochs, epochsBefore: 0 });

    // Continue with the parameters of the best epoch, as the recipe's callback restores them.
    restoreParameters(runner.parameters(), saveBest.bestParameters);

    if (options.finetune && options.finetuneEpochs > 0) {
      const layers = weightedLayers(cutAtTensor(backbone.model, backbone.featureName));
      const trainable = selectTrainable(layers, parseUnfreeze(options.unfreeze));
      optimizer.reset({ ...defaultAdamW, learningRate: options.finetuneLearningRate, weightDecay: options.weightDecay });
      earlyStopping.resetPatience(options.finetunePatience);
      const finetuning = new FinetuneRunner({
        backbone,
        head,
        trainable,
        optimizer,
        trainImages,
        trainTargets: labelMatrix(dataset.train),
        testViews,
        images,
        batchSize: options.batchSize,
        microBatchSize: options.microBatchSize,
        shuffleRandom,
        augmentRandom,
        session: { threads: options.threads },
      });
      log('info', `fine-tuning ${trainable.length} backbone tensors (${countValues(finetuning.parameters()) - head.weight.length - head.bias.length} values) of ${layers.length} layers, unfreeze ${options.unfreeze}`);
      await finetuning.prepare();
      currentRunner = finetuning;
      try {
        await runPhase({ ...loop, runner: finetuning, maxEpochs: options.finetuneEpochs, epochsBefore: adaptation.lastEpoch });
      } finally {
        await finetuning.release();
      }
    }

    const bestParameters = saveBest.bestParameters ?? copyParameters(runner.parameters());
    const bestLogits = await testLogitsOf(bestParameters, { backbone, head, extractor, testFeatures, testViews, images, threads: options.threads });
    const testMetrics = computeMetrics({ logits: bestLogits, targets: testTargets, labels, thresholds });
    await writeJsonAtomic(join(options.outDir, runFiles.metrics), { threshold: 0.5, test: testMetrics });

    const best = csvLogger.records.find((record) => record.epoch === saveBest.bestEpoch) ?? csvLogger.records[csvLogger.records.length - 1];
    return { runDir: resolve(options.outDir), labels, records: csvLogger.records, best, testMetrics, seconds: (performance.now() - started) / 1000 };
  } finally {
    await extractor.release();
  }
}

function countValues(parameters: ParameterSnapshot): number {
  let count = 0;
  for (const values of parameters.values()) {
    count += values.length;
  }
  return count;
}

/**
 * Computes test logits of a parameter snapshot: from the cached features when it holds only the head,
 * else through an inference model built with its backbone weights.
 */
async function testLogitsOf(
  parameters: ParameterSnapshot,
  context: { backbone: ResolvedBackbone; head: LinearHead; extractor: FeatureExtractor; testFeatures: Float32Array; testViews: RgbImage[]; images: ImageSettings; threads?: number },
): Promise<Float32Array> {
  const { head } = context;
  const onlyHead = [...parameters.keys()].every((name) => name === headWeightName || name === headBiasName);
  if (onlyHead) {
    const bestHead: LinearHead = { ...head, weight: parameters.get(headWeightName)!, bias: parameters.get(headBiasName)! };
    return headLogits(bestHead, context.testFeatures, context.testViews.length);
  }
  const predictorModel = buildInferenceModel(context.backbone, parameters, head.labelCount, head.featureSize);
  return runInferenceModel(predictorModel, context.backbone.inputName, context.testViews, context.images, context.threads);
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
