// `multitag audit`: rank images whose given labels the model most confidently contradicts.
import { Command } from 'commander';
import { join, parse } from 'node:path';
import { auditLabels, defaultCrossValidation, describeSuspect } from '../../report/audit.js';
import { defaultSuspectCount, writeAuditOutputs } from '../../report/auditOutput.js';
import { integerOption, positiveNumberOption } from '../options.js';
import type { Terminal } from '../terminal.js';

interface AuditFlags {
  model: string;
  data: string;
  out?: string;
  top: number;
  folds: number;
  epochs: number;
  lr: number;
  seed?: number;
  threads?: number;
}

/** Adds the audit command to `program`. */
export function addAuditCommand(program: Command, terminal: () => Terminal): void {
  program
    .command('audit')
    .description(
      'Find likely label mistakes: score every image of both splits with k-fold linear heads on the run\'s backbone features, ' +
        'so no image is scored by a head that saw it, and write an HTML gallery of the top suspects and a CSV of all scores.',
    )
    .requiredOption('--model <dir>', 'run folder of multitag train; its config.json names the backbone and preprocessing')
    .requiredOption('--data <dir>', 'data folder containing train_label.csv, train/, test_label.csv and test/')
    .option('--out <file.html>', 'gallery to write; the CSV goes beside it with the extension .csv (default: audit.html in the run folder)')
    .option('--top <count>', 'suspects shown in the gallery', integerOption(1, 10_000), defaultSuspectCount)
    .option('--folds <count>', 'cross-validation folds', integerOption(2, 100), defaultCrossValidation.folds)
    .option('--epochs <count>', 'training epochs of each fold\'s head', integerOption(1, 10_000), defaultCrossValidation.epochs)
    .option('--lr <rate>', 'AdamW learning rate of the heads', positiveNumberOption(), defaultCrossValidation.learningRate)
    .option('--seed <integer>', 'seed of the folds and head initialisation (default: the run\'s training seed)', integerOption(0, 2 ** 32 - 1))
    .option('--threads <count>', 'onnxruntime intra-op threads (default: number of logical cores)', integerOption(1, 256))
    .action(async (flags: AuditFlags) => {
      const { log, onProgress } = terminal();
      const audit = await auditLabels(
        {
          modelDir: flags.model,
          dataDir: flags.data,
          crossValidation: { folds: flags.folds, epochs: flags.epochs, learningRate: flags.lr, ...(flags.seed === undefined ? {} : { seed: flags.seed }) },
          threads: flags.threads,
        },
        { log, onProgress },
      );

      const htmlPath = flags.out ?? join(flags.model, 'audit.html');
      const { dir, name } = parse(htmlPath);
      const csvPath = join(dir, `${name}.csv`);
      await writeAuditOutputs(audit, { htmlPath, csvPath, count: flags.top, title: `multitag label audit of ${flags.data} with ${flags.model}` });
      log('info', `wrote ${htmlPath} and ${csvPath}`);

      const shown = audit.images.slice(0, Math.min(10, flags.top));
      const lines = [`Top ${shown.length} of ${audit.images.length} images by disagreement with their given labels:`];
      shown.forEach((image, index) => {
        lines.push(`  ${String(index + 1).padStart(2)}. ${image.split.padEnd(5)} ${image.file}: ${describeSuspect(image, audit.labels)}`);
      });
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
