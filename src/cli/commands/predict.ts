// `multitag predict`: tag image files or folders with a trained model.
import { Command, Option } from 'commander';
import { collectImagePaths, Predictor } from '../../train/predictor.js';
import { csvCell } from '../format.js';
import { integerOption, numberOption } from '../options.js';
import type { Terminal } from '../terminal.js';

interface PredictFlags {
  model: string;
  threshold?: number;
  format: 'json' | 'csv';
  batchSize: number;
  threads?: number;
}

/** One image's output record. */
export interface PredictionRecord {
  file: string;
  /** Labels whose probability is at or above their threshold. */
  labels: string[];
  probabilities: Record<string, number>;
}

/** Adds the predict command to `program`. */
export function addPredictCommand(program: Command, terminal: () => Terminal): void {
  program
    .command('predict')
    .description('Tag images with a trained model. PATH is an image file or a folder, searched recursively.')
    .argument('<path...>', 'image files or folders of images')
    .requiredOption('--model <dir>', 'run folder of multitag train, or a folder made by multitag export')
    .option('--threshold <probability>', "one decision threshold for every label, from 0 to 1 (default: the model's own thresholds, 0.5 unless tuned)", numberOption(0, 1))
    .addOption(new Option('--format <format>', 'output format on stdout').choices(['json', 'csv']).default('json'))
    .option('--batch-size <images>', 'images per model call', integerOption(1, 1024), 32)
    .option('--threads <count>', 'onnxruntime intra-op threads (default: number of logical cores)', integerOption(1, 256))
    .action(async (paths: string[], flags: PredictFlags) => {
      const { log, onProgress } = terminal();
      const files = await collectImagePaths(paths);
      const predictor = await Predictor.load(flags.model, { threads: flags.threads });
      try {
        const { labels, thresholds } = predictor.metadata;
        const threshold = (label: number): number => flags.threshold ?? thresholds[label];
        const { predictions, failures } = await predictor.predictFiles(files, { batchSize: flags.batchSize, onProgress });

        const records: PredictionRecord[] = predictions.map((prediction) => ({
          file: prediction.file,
          labels: labels.filter((_, label) => prediction.probabilities[label] >= threshold(label)),
          probabilities: Object.fromEntries(labels.map((label, index) => [label, Number(prediction.probabilities[index].toFixed(6))])),
        }));
        if (flags.format === 'json') {
          process.stdout.write(`[\n${records.map((record) => `  ${JSON.stringify(record)}`).join(',\n')}\n]\n`);
        } else {
          const lines = [['file', 'labels', ...labels].map(csvCell).join(',')];
          for (const record of records) {
            lines.push([csvCell(record.file), csvCell(record.labels.join(';')), ...labels.map((label) => String(record.probabilities[label]))].join(','));
          }
          process.stdout.write(`${lines.join('\n')}\n`);
        }

        for (const failure of failures) {
          log('error', failure.message);
        }
        if (failures.length > 0) {
          log('error', `${failures.length} of ${files.length} images could not be tagged; see the messages above.`);
          process.exitCode = 1;
        }
      } finally {
        await predictor.release();
      }
    });
}
