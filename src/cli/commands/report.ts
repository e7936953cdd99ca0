// `multitag report`: write the self-contained HTML report of a training run.
import { Command } from 'commander';
import { defaultSuspectCount } from '../../report/auditOutput.js';
import { defaultGridSize } from '../../report/grid.js';
import { writeRunReport } from '../../report/report.js';
import { integerOption } from '../options.js';
import type { Terminal } from '../terminal.js';

interface ReportFlags {
  model: string;
  data?: string;
  out?: string;
  gridSize: number;
  suspects: number;
  threads?: number;
}

/** Adds the report command to `program`. */
export function addReportCommand(program: Command, terminal: () => Terminal): void {
  program
    .command('report')
    .description(
      'Write one self-contained HTML file about a training run: config, training curves, metrics, per-label table and ' +
        'precision-recall curves, label co-occurrence, a sanity grid of test images and the top mislabel suspects.',
    )
    .requiredOption('--model <dir>', 'run folder of multitag train')
    .option('--data <dir>', "data folder whose test split is evaluated and whose splits are audited (default: the run's data folder)")
    .option('--out <file.html>', 'HTML file to write (default: report.html in the run folder)')
    .option('--grid-size <count>', 'tiles per row and column of the sanity grid', integerOption(1, 30), defaultGridSize)
    .option('--suspects <count>', 'mislabel suspects to show; 0 skips the audit, which extracts features of every image', integerOption(0, 10_000), defaultSuspectCount)
    .option('--threads <count>', 'onnxruntime intra-op threads (default: number of logical cores)', integerOption(1, 256))
    .action(async (flags: ReportFlags) => {
      const { log, onProgress } = terminal();
      const result = await writeRunReport(
        { runDir: flags.model, dataDir: flags.data, outPath: flags.out, gridSize: flags.gridSize, suspects: flags.suspects, threads: flags.threads },
        { log, onProgress },
      );
      log('info', `wrote ${result.path}: micro-F1 ${result.metrics.microF1.toFixed(4)} on ${result.count} test images`);
      process.stdout.write(`${result.path}\n`);
    });
}
