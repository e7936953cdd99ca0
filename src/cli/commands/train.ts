// `multitag train`: train a classifier on a data folder and print its test metrics.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { parseChannelTriple } from '../../backbone/preprocessing.js';
import { reportFiles, trainingReportCallbacks, writeTrainingReport } from '../../report/report.js';
import { readRunMetrics } from '../../report/runConfig.js';
import { defaultTrainOptions, recipes, type RecipeName, type TrainOptions } from '../../train/options.js';
import { monitoredMetrics, type MonitoredMetric } from '../../train/record.js';
import { readRunConfig } from '../../train/runConfig.js';
import { RunFolderError, runFiles } from '../../train/runFolder.js';
import { resume, train, type TrainResult } from '../../train/train.js';
import type { LogCallback } from '../../events.js';
import type { BadImagePolicy } from '../../train/badImages.js';
import { metricsTable } from '../format.js';
import { integerOption, numberOption, positiveNumberOption } from '../options.js';
import type { Terminal } from '../terminal.js';
import { fileSystemProblem } from '../userErrors.js';
import { whenNoCriticalWork } from '../../files/criticalSection.js';
import { removeTemporaryFiles } from '../../files/atomic.js';

interface TrainFlags {
  data?: string;
  backbone: string;
  out?: string;
  resume?: string;
  trainCsv: string;
  trainImages: string;
  testCsv: string;
  testImages: string;
  epochs: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  patience: number;
  monitor: MonitoredMetric;
  checkpointEvery: number;
  seed: number;
  cacheViews: number;
  featureNode?: string;
  inputSize?: number;
  mean?: string;
  std?: string;
  maxPixels: number;
  threads?: number;
  finetune: boolean;
  finetuneEpochs: number;
  finetuneLr: number;
  finetunePatience: number;
  unfreeze: string;
  microBatchSize: number;
  validationFraction: number;
  onBadImage: BadImagePolicy;
  recipe: RecipeName;
  report: boolean;
}

/** Adds the train command to `program`. */
export function addTrainCommand(program: Command, terminal: () => Terminal): void {
  const defaults = defaultTrainOptions;
  program
    .command('train')
    .description('Train a multi-label classifier on a data folder by transfer learning, then print its test metrics.')
    .option('--data <dir>', 'data folder containing train_label.csv, train/, test_label.csv and test/')
    .option('--backbone <name|path>', 'pretrained backbone: a catalog name (mobilenet_v2, downloaded once) or the path of an .onnx file', 'mobilenet_v2')
    .option('--out <dir>', 'run folder to create for the config, logs, checkpoints and the best model; must be new or empty')
    .option('--resume <dir>', 'continue the interrupted run in this run folder from its last checkpoint, with its stored options (only --threads may change)')
    .option('--train-csv <name>', 'training label CSV inside the data folder', 'train_label.csv')
    .option('--train-images <name>', 'training image folder inside the data folder', 'train')
    .option('--test-csv <name>', 'test label CSV inside the data folder', 'test_label.csv')
    .option('--test-images <name>', 'test image folder inside the data folder', 'test')
    .option('--epochs <count>', 'maximum epochs with the backbone frozen', integerOption(1), defaults.epochs)
    .option('--batch-size <images>', 'images per optimizer step', integerOption(1, 4096), defaults.batchSize)
    .option('--lr <rate>', 'AdamW learning rate with the backbone frozen', positiveNumberOption(), defaults.learningRate)
    .option('--weight-decay <factor>', 'AdamW decoupled weight decay', numberOption(0, 1), defaults.weightDecay)
    .option('--patience <epochs>', 'stop after this many epochs without improvement of the monitored metric', integerOption(1), defaults.patience)
    .addOption(new Option('--monitor <metric>', 'metric of the epoch record that picks the best epoch and drives early stopping (costs are minimised, F1 and mAP maximised)').choices(monitoredMetrics).default(defaults.monitor))
    .option('--checkpoint-every <epochs>', 'write a resumable checkpoint every this many epochs', integerOption(1), defaults.checkpointEvery)
    .option('--seed <integer>', 'seed of every random choice (initialisation, order, augmentation)', integerOption(0, 2 ** 32 - 1), defaults.seed)
    .option('--cache-views <count>', 'augmented views per training image to compute once and reuse; 0 augments afresh every epoch', integerOption(0, 100), defaults.cacheViews)
    .option('--feature-node <name>', 'tensor (or node) of the backbone holding the pooled features; found automatically when omitted')
    .option('--input-size <pixels>', 'side of the square backbone input; read from the model or its metadata when omitted', integerOption(8, 4096))
    .option('--mean <r,g,b>', 'per-channel mean on the 0..1 pixel scale, e.g. 0.485,0.456,0.406; read from the backbone metadata when omitted')
    .option('--std <r,g,b>', 'per-channel standard deviation on the 0..1 pixel scale, e.g. 0.229,0.224,0.225; read from the backbone metadata when omitted')
    .option('--max-pixels <count>', 'largest accepted image in pixels (width x height), checked before decoding', integerOption(1), defaults.maxPixels)
    .option('--threads <count>', 'onnxruntime intra-op threads (default: number of logical cores)', integerOption(1, 256))
    .option('--no-finetune', 'skip the fine-tuning phase and keep the backbone frozen')
    .option('--finetune-epochs <count>', 'maximum epochs of the fine-tuning phase', integerOption(0), defaults.finetuneEpochs)
    .option('--finetune-lr <rate>', 'AdamW learning rate of the fine-tuning phase', positiveNumberOption(), defaults.finetuneLearningRate)
    .option('--finetune-patience <epochs>', 'early-stopping patience of the fine-tuning phase', integerOption(1), defaults.finetunePatience)
    .option('--unfreeze <layers>', 'backbone layers that train in the fine-tuning phase: all, last:N (the last N layers with weights), last:P% (that share of them, from the end) or from:NODE', defaults.unfreeze)
    .option('--micro-batch-size <images>', 'images per training-graph run in the fine-tuning phase; smaller values use less memory (--recipe seed uses 8)', integerOption(1, 4096), defaults.microBatchSize)
    .option('--validation-fraction <fraction>', 'fraction of the training images held out to tune per-label thresholds, from 0 to 0.5; 0 keeps every threshold at 0.5', numberOption(0, 0.5), defaults.validationFraction)
    .addOption(new Option('--on-bad-image <policy>', 'images that cannot be decoded: error stops before training with the full list, skip trains without them and records them in config.json').choices(['error', 'skip']).default(defaults.onBadImage))
    .option('--no-report', 'skip grid.png and report.html (with its mislabel audit) at the end of training; curves.png is still drawn')
    .addOption(new Option('--recipe <name>', 'preset of the options above: default, or seed for the PyTorch tutorial (all layers, lr 1e-3 then 1e-5, patience 2 then 5); explicit options override it').choices(Object.keys(recipes)).default('default'))
    .action(async (flags: TrainFlags, command: Command) => {
      if (flags.resume) {
        const changed = command.options
          .map((option) => option.attributeName())
          .filter((name) => !['resume', 'threads', 'report'].includes(name) && command.getOptionValueSource(name) === 'cli');
        if (changed.length > 0) {
          command.error(`error: --resume continues a run with its stored options; remove ${changed.map((name) => `--${kebab(name)}`).join(', ')}.`, { exitCode: 1 });
        }
        const runDir = flags.resume;
        const { log, onProgress } = terminal();
        // A run started with --no-report stays without the report when it is resumed.
        const stored = await readRunConfig(runDir);
        const writeReport = flags.report && stored.training.callerSettings?.report !== false;

        // metrics.json is the last file training writes, so a run that has it needs at most its report.
        // A process killed while writing the report leaves a temporary file and some report files missing.
        const finished = await readRunMetrics(runDir);
        if (finished.length > 0) {
          await removeTemporaryFiles(runDir);
          const reportPresent = await Promise.all(Object.values(reportFiles).map((file) => exists(join(runDir, file))));
          const reportMissing = writeReport && reportPresent.includes(false);
          log(
            'info',
            reportMissing
              ? `${runDir} finished training already, so only its missing report files are written.`
              : `${runDir} finished training already, so nothing is resumed. Train into a new --out folder to train again.`,
          );
          process.stdout.write(finished.map((stored) => metricsTable(stored.metrics, `Test metrics of the best model (${stored.title}):`)).join('\n'));
          if (reportMissing) {
            await writeTrainingReport(runDir, { log, onProgress });
          }
          return;
        }

        await withResumeHint(runDir, async () => {
          const result = await resume(runDir, { log, onProgress, callbacks: trainingReportCallbacks(runDir) }, { threads: flags.threads });
          report(result, log);
          if (writeReport) {
            await writeTrainingReport(result.runDir, { log, onProgress });
          }
        });
        return;
      }
      if (!flags.data || !flags.out) {
        command.error('error: train needs --data DIR and --out RUN_DIR (or --resume RUN_DIR to continue a run).', { exitCode: 1 });
      }

      const { log, onProgress } = terminal();
      const options: TrainOptions = {
        dataDir: flags.data,
        layout: { trainCsv: flags.trainCsv, trainImages: flags.trainImages, testCsv: flags.testCsv, testImages: flags.testImages },
        backbone: {
          source: flags.backbone,
          featureNode: flags.featureNode,
          preprocessing: {
            inputSize: flags.inputSize,
            mean: flags.mean === undefined ? undefined : parseChannelTriple(flags.mean, '--mean', false),
            std: flags.std === undefined ? undefined : parseChannelTriple(flags.std, '--std', true),
          },
        },
        outDir: flags.out,
        epochs: flags.epochs,
        batchSize: flags.batchSize,
        learningRate: flags.lr,
        weightDecay: flags.weightDecay,
        patience: flags.patience,
        monitor: flags.monitor,
        checkpointEvery: flags.checkpointEvery,
        seed: flags.seed,
        cacheViews: flags.cacheViews,
        augment: defaults.augment,
        maxPixels: flags.maxPixels,
        threads: flags.threads,
        finetune: flags.finetune,
        finetuneEpochs: flags.finetuneEpochs,
        finetuneLearningRate: flags.finetuneLr,
        finetunePatience: flags.finetunePatience,
        unfreeze: flags.unfreeze,
        microBatchSize: flags.microBatchSize,
        validationFraction: flags.validationFraction,
        onBadImage: flags.onBadImage,
        callerSettings: { report: flags.report },
      };
      applyRecipe(options, recipes[flags.recipe], command);

      await withResumeHint(options.outDir, async () => {
        const result = await train(options, { log, onProgress, callbacks: trainingReportCallbacks(options.outDir) });
        report(result, log);
        if (flags.report) {
          await writeTrainingReport(result.runDir, { log, onProgress });
        }
      });
    });
}

/**
 * Runs `body` and rewrites a file-system error (a full disk, for example) raised once the run folder has its
 * config.json: the same train command would stop at the non-empty --out folder, while --resume
 * continues the run from its last checkpoint.
 */
async function withResumeHint(runDir: string, body: () => Promise<void>): Promise<void> {
  // Ctrl-C stops at once, except that a file write or the end-of-epoch bookkeeping in progress finishes
  // first, so the epoch whose log line was shown is in the checkpoint and no temporary file is left.
  // A second Ctrl-C stops without waiting. The message shows how to continue.
  let interrupted = false;
  const onInterrupt = (): void => {
    if (interrupted) {
      process.exit(130);
    }
    interrupted = true;
    void whenNoCriticalWork().then(async () => {
      process.stderr.write(`\n${await interruptMessage(runDir)}\n`);
      process.exit(130);
    });
  };
  process.on('SIGINT', onInterrupt);
  try {
    await body();
  } catch (error) {
    const fault = fileSystemProblem(error);
    if (fault === undefined || !(await exists(join(runDir, runFiles.config)))) {
      throw error;
    }
    const firstStep = fault.code === 'ENOSPC' ? 'Free space' : 'Fix this';
    throw new RunFolderError(`${fault.path} ${fault.problem}. ${firstStep}, then continue the run with: multitag train --resume ${runDir}`);
  } finally {
    process.removeListener('SIGINT', onInterrupt);
  }
}

/** Builds the message of an interrupted train command from how far the run folder got. */
async function interruptMessage(runDir: string): Promise<string> {
  if (!(await exists(join(runDir, runFiles.config)))) {
    return `multitag: interrupted before the run started, so nothing was saved. Run the same command again to start it.`;
  }
  if (!(await exists(join(runDir, runFiles.checkpoint)))) {
    return `multitag: interrupted before the first checkpoint. multitag train --resume ${runDir} starts the run again from its first epoch.`;
  }
  return `multitag: interrupted. Continue the run with: multitag train --resume ${runDir}`;
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

/** Option names of the recipe fields, as commander stores them. Every field a recipe sets needs one. */
export const recipeFlagNames: Partial<Record<keyof TrainOptions, string>> = {
  epochs: 'epochs',
  batchSize: 'batchSize',
  learningRate: 'lr',
  patience: 'patience',
  cacheViews: 'cacheViews',
  finetune: 'finetune',
  finetuneEpochs: 'finetuneEpochs',
  finetuneLearningRate: 'finetuneLr',
  finetunePatience: 'finetunePatience',
  unfreeze: 'unfreeze',
  microBatchSize: 'microBatchSize',
  validationFraction: 'validationFraction',
};

/** Sets each recipe value unless the user gave that option on the command line. */
function applyRecipe(options: TrainOptions, recipe: Partial<TrainOptions>, command: Command): void {
  for (const [key, value] of Object.entries(recipe) as [keyof TrainOptions, never][]) {
    const flag = recipeFlagNames[key];
    if (!flag) {
      throw new Error(`recipe option ${key} has no command-line flag in recipeFlagNames`);
    }
    if (command.getOptionValueSource(flag) !== 'cli') {
      options[key] = value;
    }
  }
}

function report(result: TrainResult, log: LogCallback): void {
  log('info', `run folder ${result.runDir}: best epoch ${result.best.epoch} (${result.best.phase}), ${result.seconds.toFixed(1)} s of training in this command`);
  process.stdout.write(metricsTable(result.testMetrics, 'Test metrics of the best model (threshold 0.5):'));
  if (result.thresholds.some((threshold) => threshold !== 0.5)) {
    process.stdout.write('\n');
    process.stdout.write(metricsTable(result.tunedTestMetrics, 'Test metrics at the per-label thresholds tuned on the held-out training images:'));
  }
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}
