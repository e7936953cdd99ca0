// The training entry points: validate the data, open the backbone, run the adaptation and fine-tuning
// phases with their callbacks, and leave a complete run folder behind. `resume` continues a run from
// its last checkpoint with the same options and random state.
import { join, resolve } from 'node:path';
import { FeatureExtractor, resolveBackbone, type ResolvedBackbone } from '../backbone/backbone.js';
import { cutAtTensor } from '../backbone/featureGraph.js';
import { labelMatrix, loadDataset } from '../data/dataset.js';
import { silentLog, silentProgress, type LogCallback, type ProgressCallback } from '../events.js';
import { removeTemporaryFiles, writeJsonAtomic } from '../files/atomic.js';
import type { RgbImage } from '../image/decode.js';
import { Random } from '../image/random.js';
import { computeMetrics, type MultiLabelMetrics } from '../metrics/index.js';
import { AdaptationRunner, evalViewFeatures } from './adaptation.js';
import { AdamW, defaultAdamW } from './adamw.js';
import { CsvLogger, EarlyStopping, EpochLogger, PeriodicCheckpoint, SaveBest, TerminateOnNonFinite, type ParameterSnapshot, type TrainingCallback } from './callbacks.js';
import { readCheckpoint, writeCheckpoint, type Checkpoint } from './checkpoint.js';
import { FinetuneRunner } from './finetune.js';
import { createHead, headLogits, type LinearHead } from './head.js';
import { decodeAll, evalViewDecoder, loadEvalViews, trainImageDecoder, type ImageSettings } from './images.js';
import { BadImagesError, type SkippedImage } from './badImages.js';
import { buildInferenceModel, headBiasName, headWeightName } from './inferenceModel.js';
import { runInferenceModel } from './inferenceSession.js';
import type { TrainOptions } from './options.js';
import { copyParameters, runPhase, type EpochRunner } from './phase.js';
import { csvToRecords, type EpochRecord } from './record.js';
import { buildRunConfig, readRunConfig } from './runConfig.js';
import { checkRunFolder, createRunFolder, modelMetadata, RunFolderError, runFiles, saveBestModel } from './runFolder.js';
import { selectRows, splitValidation, tuneThresholds, type TunedThreshold } from './thresholds.js';
import { parseUnfreeze, selectTrainable, weightedLayers } from './unfreeze.js';
import { readFile, stat } from 'node:fs/promises';

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
  /** Per-label thresholds tuned on the held-out part of the training split (0.5 without one). */
  thresholds: number[];
  /** Test metrics of the kept model at the tuned thresholds. */
  tunedTestMetrics: MultiLabelMetrics;
  /** Wall time of this call in seconds. */
  seconds: number;
}

/** Trains a multi-label classifier and writes its run folder, which must be new or empty. */
export async function train(options: TrainOptions, hooks: TrainHooks = {}): Promise<TrainResult> {
  return runTraining(options, hooks, undefined);
}

/**
 * Continues an interrupted run from its last checkpoint, with the options stored in its config.json.
 * A run stopped before its first checkpoint starts again from the beginning in the same folder. Throws
 * RunFolderError when the backbone file of the run is missing or no longer has the recorded SHA-256.
 */
export async function resume(runDir: string, hooks: TrainHooks = {}, overrides: Pick<Partial<TrainOptions>, 'threads'> = {}): Promise<TrainResult> {
  const config = await readRunConfig(runDir);
  await removeTemporaryFiles(runDir);
  const checkpointPath = join(runDir, runFiles.checkpoint);
  const checkpoint = await readCheckpoint(checkpointPath).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') {
      return undefined;
    }
    throw error;
  });
  if (!checkpoint) {
    hooks.log?.('info', `${runDir} has no checkpoint yet, so the run starts again from its first epoch`);
  }
  // --resume cannot change the backbone, so the usual advice to pass another path would not help.
  const source = config.training.backbone.source;
  if (config.backbone.catalogName === null && !(await stat(source).catch(() => undefined))?.isFile()) {
    throw new RunFolderError(`Backbone ${source}, which ${runDir} was trained with, was not found. Put the file back at that path to resume the run.`);
  }
  const options: TrainOptions = { ...config.training, ...overrides, outDir: runDir };
  return runTraining(options, hooks, { checkpoint, backboneSha256: config.backbone.sha256 });
}

/** Starting point of a resumed run: its checkpoint, if any, and the SHA-256 of the backbone it was trained with. */
interface ResumeState {
  checkpoint: Checkpoint | undefined;
  backboneSha256: string;
}

async function runTraining(options: TrainOptions, hooks: TrainHooks, resuming: ResumeState | undefined): Promise<TrainResult> {
  const checkpoint = resuming?.checkpoint;
  const log = hooks.log ?? silentLog;
  const onProgress = hooks.onProgress ?? silentProgress;
  const started = performance.now();

  // Validate everything that can be wrong with the input before any file is written.
  const dataset = await loadDataset(options.dataDir, options.layout);
  for (const warning of dataset.warnings) {
    log('warn', `${warning.file}${warning.line ? `:${warning.line}` : ''}: ${warning.message}`);
  }
  const backbone = await resolveBackbone({ ...options.backbone, onProgress: options.backbone.onProgress ?? onProgress });
  if (options.finetune && options.finetuneEpochs > 0) {
    // A bad --unfreeze would otherwise surface only after the whole adaptation phase.
    selectTrainable(weightedLayers(cutAtTensor(backbone.model, backbone.featureName)), parseUnfreeze(options.unfreeze));
  }
  if (!resuming) {
    await checkRunFolder(options.outDir);
  } else if (backbone.sha256 !== resuming.backboneSha256) {
    // Other weights would silently continue a different model from the checkpoint.
    throw new RunFolderError(
      `Backbone ${backbone.path} has changed since ${options.outDir} was trained (SHA-256 ${backbone.sha256.slice(0, 12)}, the run recorded ` +
        `${resuming.backboneSha256.slice(0, 12)}). Put the original file back to resume the run, or start a new run with this backbone.`,
    );
  }
  const images: ImageSettings = {
    inputSize: backbone.preprocessing.inputSize,
    normalization: { mean: backbone.preprocessing.mean, std: backbone.preprocessing.std },
    augment: options.augment,
    decode: { maxPixels: options.maxPixels },
  };

  // Decode every image up front, so all bad files are reported together before training starts.
  const trainDecoded = await decodeAll(dataset.train.items.map((item) => item.path), trainImageDecoder(images), 'decode train images', images, onProgress);
  const testDecoded = await decodeAll(dataset.test.items.map((item) => item.path), evalViewDecoder(images), 'decode test images', images, onProgress);
  const failures = [...trainDecoded.failures, ...testDecoded.failures];
  if (failures.length > 0 && options.onBadImage === 'error') {
    throw new BadImagesError(failures);
  }
  for (const failure of failures) {
    log('warn', `skipped: ${failure.message}`);
  }
  if (failures.length > 0) {
    log('warn', `skipped ${failures.length} images that cannot be decoded`);
  }
  const skipped: SkippedImage[] = failures.map((failure) => ({ file: failure.file, reason: failure.reason }));
  const keptTrain = keptIndices(trainDecoded.images);
  const keptTest = keptIndices(testDecoded.images);
  if (keptTrain.length === 0 || keptTest.length === 0) {
    throw new BadImagesError(failures);
  }

  const labels = dataset.train.labels;
  const trainPool = keptTrain.map((index) => dataset.train.items[index]);
  const trainPoolImages = keptTrain.map((index) => trainDecoded.images[index]!);
  const trainPoolTargets = selectRows(labelMatrix(dataset.train), labels.length, keptTrain);
  const testViews = keptTest.map((index) => testDecoded.images[index]!);
  const testTargets = selectRows(labelMatrix(dataset.test), labels.length, keptTest);
  log('info', `training on ${trainPool.length} images, testing on ${testViews.length}, labels: ${labels.join(', ')}`);

  const extractor = await FeatureExtractor.create(backbone, { threads: options.threads });
  if (!resuming) {
    await createRunFolder(options.outDir).catch(async (error: unknown) => {
      await extractor.release();
      throw error;
    });
  }
  log('info', `backbone ${backbone.path}: input ${backbone.inputName} ${backbone.preprocessing.inputSize}px, features ${backbone.featureName} (${extractor.featureSize})`);
  if (!resuming) {
    const config = buildRunConfig(options, backbone, labels, extractor.featureSize, trainPool.length, testViews.length, skipped);
    await writeJsonAtomic(join(options.outDir, runFiles.config), config).catch(async (error: unknown) => {
      await extractor.release();
      throw error;
    });
  }

  try {
    // Each consumer of randomness gets its own stream, so changing one (say, the augmentation) leaves
    // the others as they were.
    const random = new Random(options.seed);
    const headRandom = random.fork();
    const shuffleRandom = random.fork();
    const augmentRandom = random.fork();
    const validationRandom = random.fork();
    const thresholdRandom = random.fork();

    const split = splitValidation(trainPool.length, options.validationFraction, validationRandom);
    const trainImages = split.train.map((index) => trainPoolImages[index]);
    const trainTargets = selectRows(trainPoolTargets, labels.length, split.train);
    const validationItems = split.validation.map((index) => trainPool[index]);
    const validationTargets = selectRows(trainPoolTargets, labels.length, split.validation);
    if (validationItems.length > 0) {
      log('info', `holding out ${validationItems.length} training images to tune per-label thresholds`);
    }

    const testFeatures = await evalViewFeatures(extractor, testViews, images, options.batchSize, 'features test', onProgress);
    const validationViews = await loadEvalViews(validationItems.map((item) => item.path), images, 'decode validation images', onProgress);
    const validationFeatures = await evalViewFeatures(extractor, validationViews, images, options.batchSize, 'features validation', onProgress);

    const head = createHead(extractor.featureSize, labels.length, headRandom);
    const optimizer = new AdamW({ ...defaultAdamW, learningRate: options.learningRate, weightDecay: options.weightDecay });

    const adaptationRunner = new AdaptationRunner({
      extractor,
      head,
      optimizer,
      trainImages,
      trainTargets,
      testFeatures,
      testCount: testViews.length,
      images,
      batchSize: options.batchSize,
      shuffleRandom,
      augmentRandom,
      cacheViews: options.cacheViews,
    });
    // Cached views serve only the adaptation phase. They come from the seed's augmentation stream, so a
    // run resumed in that phase recomputes the same ones. A run resumed in fine-tuning does not need them.
    const resumeInFinetuning = checkpoint?.state.phase === 'finetuning';
    if (!resumeInFinetuning) {
      await adaptationRunner.prepare(onProgress);
    }

    const thresholds = labels.map(() => 0.5);
    const csvLogger = new CsvLogger(join(options.outDir, runFiles.log), checkpoint ? await readRecords(options.outDir, checkpoint.state.epoch) : []);
    const saveBest = new SaveBest(options.monitor, (parameters) => saveBestModel(options.outDir, backbone, parameters, labels, extractor.featureSize, thresholds));
    const earlyStopping = new EarlyStopping(options.monitor, options.patience);
    let currentRunner: EpochRunner = adaptationRunner;
    let adaptationEpochs: number | undefined;
    const saveCheckpoint = (): Promise<void> =>
      writeCheckpoint(
        join(options.outDir, runFiles.checkpoint),
        currentRunner,
        optimizer,
        {
          epoch: csvLogger.records.length,
          phase: currentRunner.phase,
          adaptationEpochs,
          optimizerStep: optimizer.step,
          earlyStopping: earlyStopping.getState(),
          saveBest: saveBest.getState(),
          random: { shuffle: shuffleRandom.getState(), augment: augmentRandom.getState() },
        },
        saveBest.bestParameters,
      );
    const callbacks = [
      new TerminateOnNonFinite(),
      new EpochLogger(),
      csvLogger,
      saveBest,
      earlyStopping,
      new PeriodicCheckpoint(options.checkpointEvery),
      ...(hooks.callbacks ?? []),
    ];
    const loop = { callbacks, labels, testTargets, saveCheckpoint, log, onProgress };

    // A resumed run restores the loop state of its checkpoint before the phase it stopped in.
    const restore = (runner: EpochRunner): void => {
      if (!checkpoint) {
        return;
      }
      restoreParameters(runner.parameters(), checkpoint.parameters);
      optimizer.restore(checkpoint.state.optimizerStep, checkpoint.firstMoments, checkpoint.secondMoments);
      earlyStopping.setState(checkpoint.state.earlyStopping);
      saveBest.setState(checkpoint.state.saveBest);
      saveBest.bestParameters = checkpoint.best.size > 0 ? checkpoint.best : undefined;
      shuffleRandom.restoreState(checkpoint.state.random.shuffle);
      augmentRandom.restoreState(checkpoint.state.random.augment);
      log('info', `resuming after epoch ${checkpoint.state.epoch} (${checkpoint.state.phase})`);
    };

    if (resumeInFinetuning) {
      adaptationEpochs = checkpoint!.state.adaptationEpochs ?? 0;
    } else {
      restore(adaptationRunner);
      const phaseEpochsDone = checkpoint?.state.epoch ?? 0;
      adaptationRunner.epochsTrained = phaseEpochsDone;
      const adaptation = await runPhase({
        ...loop,
        runner: adaptationRunner,
        // A checkpoint written in the epoch that triggered early stopping ends the phase at once.
        maxEpochs: earlyStopping.epochsWithoutImprovement >= earlyStopping.patience ? phaseEpochsDone : options.epochs,
        epochsBefore: phaseEpochsDone,
        phaseEpochsDone,
      });
      adaptationEpochs = adaptation.lastEpoch;

      // Continue with the parameters of the best epoch, as the recipe's callback restores them.
      restoreParameters(adaptationRunner.parameters(), saveBest.bestParameters);
    }

    if (options.finetune && options.finetuneEpochs > 0) {
      const layers = weightedLayers(cutAtTensor(backbone.model, backbone.featureName));
      const trainable = selectTrainable(layers, parseUnfreeze(options.unfreeze));
      const finetuning = new FinetuneRunner({
        backbone,
        head,
        trainable,
        optimizer,
        trainImages,
        trainTargets,
        testViews,
        images,
        batchSize: options.batchSize,
        microBatchSize: options.microBatchSize,
        shuffleRandom,
        augmentRandom,
        session: { threads: options.threads },
      });
      optimizer.reset({ ...defaultAdamW, learningRate: options.finetuneLearningRate, weightDecay: options.weightDecay });
      earlyStopping.resetPatience(options.finetunePatience);
      if (resumeInFinetuning) {
        restore(finetuning);
      }
      const backboneValues = countValues(finetuning.parameters()) - head.weight.length - head.bias.length;
      log('info', `fine-tuning ${trainable.length} backbone tensors (${backboneValues} values) of ${layers.length} layers, unfreeze ${options.unfreeze}`);

      // Every frozen-backbone feature is computed by now, so the extractor's memory can go before the
      // larger training graph is built.
      await extractor.release();
      await finetuning.prepare();
      currentRunner = finetuning;
      const phaseEpochsDone = resumeInFinetuning ? checkpoint!.state.epoch - adaptationEpochs : 0;
      try {
        const stopped = earlyStopping.epochsWithoutImprovement >= earlyStopping.patience;
        await runPhase({ ...loop, runner: finetuning, maxEpochs: stopped ? phaseEpochsDone : options.finetuneEpochs, epochsBefore: adaptationEpochs + phaseEpochsDone, phaseEpochsDone });
      } finally {
        await finetuning.release();
      }
    }

    const bestParameters = saveBest.bestParameters ?? copyParameters(currentRunner.parameters());
    const context = { backbone, head, images, threads: options.threads };
    const testLogits = await logitsOf(bestParameters, testViews, testFeatures, context);
    const testMetrics = computeMetrics({ logits: testLogits, targets: testTargets, labels, thresholds });

    // Tune thresholds on the held-out images, then store them in model.json for predict and evaluate.
    let tunedThresholds = thresholds;
    let thresholdReport: Record<string, TunedThreshold> = {};
    if (validationViews.length > 0) {
      const validationLogits = await logitsOf(bestParameters, validationViews, validationFeatures, context);
      const tuned = tuneThresholds(validationLogits, validationTargets, labels.length, thresholdRandom);
      tunedThresholds = tuned.map((result) => result.threshold);
      thresholdReport = Object.fromEntries(labels.map((label, index) => [label, tuned[index]]));
      await writeJsonAtomic(join(options.outDir, runFiles.modelMetadata), modelMetadata(backbone, labels, tunedThresholds));
      const described = labels.map((label, index) => `${label} ${tunedThresholds[index].toFixed(3)}${tuned[index].adopted ? '' : ' (kept)'}`);
      log('info', `thresholds from ${validationViews.length} held-out images: ${described.join(', ')}`);
    }
    const tunedMetrics = computeMetrics({ logits: testLogits, targets: testTargets, labels, thresholds: tunedThresholds });
    await writeJsonAtomic(join(options.outDir, runFiles.metrics), {
      thresholds: Object.fromEntries(labels.map((label, index) => [label, tunedThresholds[index]])),
      validationCount: validationViews.length,
      thresholdTuning: thresholdReport,
      testAtHalf: testMetrics,
      testAtTuned: tunedMetrics,
    });

    const best = csvLogger.records.find((record) => record.epoch === saveBest.bestEpoch) ?? csvLogger.records[csvLogger.records.length - 1];
    return {
      runDir: resolve(options.outDir),
      labels,
      records: csvLogger.records,
      best,
      testMetrics,
      thresholds: tunedThresholds,
      tunedTestMetrics: tunedMetrics,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await extractor.release();
  }
}

/** Reads the first `epochs` records of log.csv; later rows belong to epochs the checkpoint does not cover. */
async function readRecords(runDir: string, epochs: number): Promise<EpochRecord[]> {
  const text = await readFile(join(runDir, runFiles.log), 'utf8').catch(() => '');
  return csvToRecords(text).slice(0, epochs);
}

function keptIndices(images: readonly (RgbImage | undefined)[]): number[] {
  const kept: number[] = [];
  images.forEach((image, index) => {
    if (image) {
      kept.push(index);
    }
  });
  return kept;
}

function countValues(parameters: ParameterSnapshot): number {
  let count = 0;
  for (const values of parameters.values()) {
    count += values.length;
  }
  return count;
}

/**
 * Computes the logits of a parameter snapshot on evaluation views: from the views' frozen-backbone
 * features when the snapshot contains only the head, else through an inference model built with its
 * backbone weights.
 */
async function logitsOf(
  parameters: ParameterSnapshot,
  views: readonly RgbImage[],
  features: Float32Array,
  context: { backbone: ResolvedBackbone; head: LinearHead; images: ImageSettings; threads?: number },
): Promise<Float32Array> {
  const { head } = context;
  const onlyHead = [...parameters.keys()].every((name) => name === headWeightName || name === headBiasName);
  if (onlyHead) {
    const bestHead: LinearHead = { ...head, weight: parameters.get(headWeightName)!, bias: parameters.get(headBiasName)! };
    return headLogits(bestHead, features, views.length);
  }
  const model = buildInferenceModel(context.backbone, parameters, head.labelCount, head.featureSize);
  return runInferenceModel(model, context.backbone.inputName, views, context.images, context.threads);
}

function restoreParameters(live: ParameterSnapshot, saved: ParameterSnapshot | undefined): void {
  for (const [name, values] of saved ?? []) {
    live.get(name)?.set(values);
  }
}
