#!/usr/bin/env node
// The multitag command line: a thin layer that parses options, calls the library and prints results.
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { addAuditCommand } from './commands/audit.js';
import { addEvaluateCommand } from './commands/evaluate.js';
import { addExportCommand } from './commands/export.js';
import { addPredictCommand } from './commands/predict.js';
import { addReportCommand } from './commands/report.js';
import { addServeCommand } from './commands/serve.js';
import { addTrainCommand } from './commands/train.js';
import { createTerminal, type LogFormat, type Terminal } from './terminal.js';
import { userErrorMessage } from './userErrors.js';

const program = new Command();
// The compiled file is dist/src/cli/main.js, so the package root is three folders up.
const packageJson = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
let terminal: Terminal | undefined;

/** Creates the terminal on first use; `showFields` prints log fields in pretty mode too, as servers need. */
function getTerminal(settings: { showFields?: boolean } = {}): Terminal {
  if (!terminal) {
    const options = program.opts<{ logFormat: LogFormat; verbose?: boolean }>();
    terminal = createTerminal({ format: options.logFormat, level: options.verbose ? 'debug' : 'info', showFields: settings.showFields });
  }
  return terminal;
}

program
  .name('multitag')
  .description('Train, evaluate and use multi-label image classifiers by transfer learning from pretrained ONNX backbones.')
  .addOption(new Option('--log-format <format>', 'log line format on stderr').choices(['pretty', 'json']).default('pretty'))
  .option('--verbose', 'also log debug messages')
  .version(packageJson.version, '--version', 'print the multitag version')
  .exitOverride()
  // Commander starts its messages with "error: ", but every error of the CLI starts with "multitag: ".
  .configureOutput({ outputError: (message, write) => write(message.replace(/^error: /, 'multitag: ')) })
  .showHelpAfterError('(run with --help for the options)');

addTrainCommand(program, getTerminal);
addEvaluateCommand(program, getTerminal);
addPredictCommand(program, getTerminal);
addReportCommand(program, getTerminal);
addAuditCommand(program, getTerminal);
addServeCommand(program, getTerminal);
addExportCommand(program, getTerminal);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  terminal?.close();
  if (error instanceof CommanderError) {
    // Commander has printed its message or the help already.
    process.exitCode = error.exitCode;
  } else {
    const message = userErrorMessage(error);
    if (message !== undefined) {
      process.stderr.write(`multitag: ${message}\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`multitag: internal error, please report it with the command you ran:\n${(error as Error).stack ?? String(error)}\n`);
      process.exitCode = 70;
    }
  }
} finally {
  terminal?.close();
}
