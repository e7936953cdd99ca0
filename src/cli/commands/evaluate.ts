// `multitag evaluate`: metrics of a trained model on a labelled split.
import { Command } from 'commander';
import { defaultGridSize, writeSanityGrid } from '../../report/grid.js';
import { evaluate } from '../../train/evaluate.js';
import { metricsJson, metricsTable } from '../format.js';
import { integerOption, numberOption } from '../options.js';
import type { Terminal } from '../terminal.js';

interface EvaluateFlags {
  model: string;
  data?: string;
  csv?: string;
  images?: string;
  threshold?: number;
  json?: boolean;
  threads?: number;
  grid?: string;
  gridSize: number;
}

/** Adds the evaluate command to `program`. */
export function addEvaluateCommand(program: Command, terminal: () => Terminal): void {
  program
    .command('evaluate')
    .description('Evaluate a trained model on the test split of a data folder, or on any label CSV with its image folder.')
    .requiredOption('--model <dir>', 'run folder of multitag train, or a folder made by multitag export')
    .option('--data <dir>', 'data folder; its test_label.csv and test/ are evaluated')
    .option('--csv <file>', 'label CSV to evaluate on (with --images)')
    .option('--images <dir>', 'image folder the CSV names files in (with --csv)')
    .option('--threshold <probability>', "one decision threshold for every label, from 0 to 1 (default: the model's own thresholds)", numberOption(0, 1))
    .option('--json', 'print one JSON object with microF1, macroF1, mAP, exactMatch, hammingLoss, bce and perLabel')
    .option('--threads <count>', 'onnxruntime intra-op threads (default: number of logical cores)', integerOption(1, 256))
    .option('--grid <file.png>', "also write a sanity grid of test images chosen with the run's seed, titled with true and predicted labels (green: exact match, red: not)")
    .option('--grid-size <count>', 'tiles per row and column of the sanity grid', integerOption(1, 30), defaultGridSize)
    .action(async (flags: EvaluateFlags, command: Command) => {
      if (!flags.data && !(flags.csv && flags.images)) {
        command.error('error: evaluate needs --data DIR, or both --csv FILE and --images DIR.', { exitCode: 1 });
      }
      if (flags.data && (flags.csv || flags.images)) {
        command.error('error: pass either --data or --csv with --images, not both.', { exitCode: 1 });
      }
      if (flags.grid && !flags.grid.toLowerCase().endsWith('.png')) {
        // The grid is always PNG, so another extension would give a file that its name misdescribes.
        command.error(`error: --grid ${flags.grid} must name a .png file, because the sanity grid is written as PNG.`, { exitCode: 1 });
      }
      const { log, onProgress } = terminal();
      const result = await evaluate(
        { modelDir: flags.model, dataDir: flags.data, csvPath: flags.csv, imagesDir: flags.images, threshold: flags.threshold, threads: flags.threads },
        { log, onProgress },
      );
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(metricsJson(result.metrics), null, 2)}\n`);
      } else {
        const thresholds = result.thresholds.every((value) => value === result.thresholds[0]) ? `threshold ${result.thresholds[0]}` : 'per-label thresholds';
        process.stdout.write(metricsTable(result.metrics, `Metrics on ${result.count} images (${thresholds}):`));
      }
      if (flags.grid) {
        const grid = await writeSanityGrid(
          { modelDir: flags.model, outPath: flags.grid, dataDir: flags.data, csvPath: flags.csv, imagesDir: flags.images, threshold: flags.threshold, gridSize: flags.gridSize, threads: flags.threads },
          { log, onProgress },
        );
        log('info', `wrote ${grid.path}: ${grid.exactMatches} of ${grid.tiles} images with exactly their true labels predicted`);
      }
      if (result.failures.length > 0) {
        process.exitCode = 1;
      }
    });
}
