// `multitag serve`: an HTTP server that tags uploaded images with a trained model, plus a web page.
import { Command } from 'commander';
import { defaultServeOptions, startServer } from '../../serve/server.js';
import { integerOption, positiveNumberOption } from '../options.js';
import type { Terminal } from '../terminal.js';

interface ServeFlags {
  model: string;
  host: string;
  port: number;
  maxBodyMb: number;
  maxPixels: number;
  queue: number;
  batchSize: number;
  batchWaitMs: number;
  maxFiles: number;
  timeoutMs: number;
  threads?: number;
}

/** Adds the serve command to `program`. */
export function addServeCommand(program: Command, terminal: (settings?: { showFields?: boolean }) => Terminal): void {
  const defaults = defaultServeOptions;
  program
    .command('serve')
    .description('Serve a trained model over HTTP: POST /predict, POST /predict/batch, GET /labels, GET /health, and a web page at /. Stops cleanly on SIGTERM or SIGINT.')
    .requiredOption('--model <dir>', 'run folder of multitag train, or a folder made by multitag export')
    .option('--host <address>', 'address to listen on; 0.0.0.0 also accepts other machines', defaults.host)
    .option('--port <number>', 'TCP port; 0 picks a free port', integerOption(0, 65535), defaults.port)
    .option('--max-body-mb <megabytes>', 'largest request body in MiB; for a batch, the sum of its files', positiveNumberOption(), defaults.maxBodyBytes / 2 ** 20)
    .option('--max-pixels <count>', 'largest image in pixels (width x height), checked before decoding', integerOption(1), defaults.maxPixels)
    .option('--queue <images>', 'maximum images being read, decoded, queued or run at once; requests beyond it get 503 with Retry-After', integerOption(1, 100_000), defaults.maxPending)
    .option('--batch-size <images>', 'maximum images in one model call, collected across concurrent requests; 1 turns micro-batching off', integerOption(1, 1024), defaults.maxBatchSize)
    .option('--batch-wait-ms <milliseconds>', 'maximum wait in milliseconds for more images to join a model call (when --batch-size is above 1); 0 runs each call at once', integerOption(0, 10_000), defaults.maxWaitMs)
    .option('--max-files <count>', 'maximum files in one POST /predict/batch request', integerOption(1, 1000), defaults.maxFiles)
    .option('--timeout-ms <milliseconds>', 'time in milliseconds to receive a request and respond to it before it fails with 503', integerOption(100), defaults.timeoutMs)
    .option('--threads <count>', 'onnxruntime intra-op threads (default: number of logical cores)', integerOption(1, 256))
    .action(async (flags: ServeFlags) => {
      const { logger } = terminal({ showFields: true });
      const server = await startServer({
        modelDir: flags.model,
        host: flags.host,
        port: flags.port,
        maxBodyBytes: Math.round(flags.maxBodyMb * 2 ** 20),
        maxPixels: flags.maxPixels,
        maxPending: flags.queue,
        maxBatchSize: flags.batchSize,
        maxWaitMs: flags.batchWaitMs,
        maxFiles: flags.maxFiles,
        timeoutMs: flags.timeoutMs,
        threads: flags.threads,
        logger,
      });
      logger.info({ url: server.url, model: flags.model }, `serving ${flags.model} at ${server.url}`);

      // The action ends, and the process exits with status 0, once the server has shut down.
      await new Promise<void>((resolve, reject) => {
        const shutDown = (signal: NodeJS.Signals): void => {
          process.off('SIGTERM', shutDown);
          process.off('SIGINT', shutDown);
          logger.info({ signal, pendingImages: server.batcher.pending }, `${signal} received: finishing requests in flight, then stopping`);
          server.close().then(() => {
            logger.info('server stopped');
            resolve();
          }, reject);
        };
        process.on('SIGTERM', shutDown);
        process.on('SIGINT', shutDown);
      });
    });
}
