// `multitag export`: copy a trained model into a folder for deployment, with usage notes.
import { Command } from 'commander';
import { exportModel } from '../../serve/export.js';
import type { Terminal } from '../terminal.js';

interface ExportFlags {
  model: string;
  out: string;
}

/** Adds the export command to `program`. */
export function addExportCommand(program: Command, terminal: () => Terminal): void {
  program
    .command('export')
    .description('Copy model.onnx and model.json of a trained model into a folder, with preprocess.js (the preprocessing for browsers) and a README on using it from Node and browsers.')
    .requiredOption('--model <dir>', 'run folder of multitag train, or an earlier export')
    .requiredOption('--out <dir>', 'folder to write; created if missing, files of an earlier export in it are replaced')
    .action(async (flags: ExportFlags) => {
      const { log } = terminal();
      const result = await exportModel(flags.model, flags.out);
      log('info', `exported ${flags.model} to ${result.outDir}: ${result.files.join(', ')}`, { labels: result.metadata.labels.length });
    });
}
