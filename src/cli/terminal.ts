// Terminal output of the CLI: pino log lines on stderr, and progress bars (cli-progress) on a terminal
// or plain progress log lines when stderr is not a terminal or CI is set.
import { Writable } from 'node:stream';
import cliProgress from 'cli-progress';
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { LogCallback, Progress, ProgressCallback } from '../events.js';

/** Format of the log lines on stderr. */
export type LogFormat = 'pretty' | 'json';

/** The CLI's logger and progress display. */
export interface Terminal {
  logger: Logger;
  log: LogCallback;
  onProgress: ProgressCallback;
  /** Ends any progress bar. */
  close(): void;
}

/** Returns whether progress bars can be drawn: stderr is a terminal and CI is not set. */
export function canDrawBars(): boolean {
  return Boolean(process.stderr.isTTY) && !process.env.CI;
}

/** Creates the logger and the progress display. */
export function createTerminal(options: { level?: string; format?: LogFormat; showFields?: boolean } = {}): Terminal {
  const bars = canDrawBars() ? new cliProgress.MultiBar({
    format: '{task} [{bar}] {percentage}% | {value}/{total} {unit} | {rate}/s | ETA {eta_formatted}',
    hideCursor: true,
    clearOnComplete: true,
    stopOnComplete: false,
    etaBuffer: 50,
    fps: 5,
  }) : undefined;

  // Log lines go above the bars, so a bar never overwrites a message.
  const stderr = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (bars) {
        bars.log(chunk.toString());
      } else {
        process.stderr.write(chunk);
      }
      callback();
    },
  });
  const level = options.level ?? 'info';
  const logger =
    options.format === 'json'
      ? pino({ level }, stderr)
      : pino({ level }, pretty({ destination: stderr, sync: true, colorize: Boolean(process.stderr.isTTY), ignore: 'pid,hostname', translateTime: 'SYS:HH:MM:ss', hideObject: !options.showFields }));

  const log: LogCallback = (logLevel, message, fields) => {
    logger[logLevel](fields ?? {}, message);
  };

  return { logger, log, onProgress: bars ? barProgress(bars) : lineProgress(log), close: () => bars?.stop() };
}

function barProgress(bars: cliProgress.MultiBar): ProgressCallback {
  let current: { task: string; bar: cliProgress.SingleBar; started: number; startDone: number } | undefined;
  return (progress: Progress) => {
    if (!current || current.task !== progress.task) {
      if (current) {
        bars.remove(current.bar);
      }
      current = { task: progress.task, bar: bars.create(progress.total, 0, { task: progress.task, unit: progress.unit, rate: '0' }), started: performance.now(), startDone: progress.done };
    }
    const seconds = (performance.now() - current.started) / 1000;
    // The first report of a task already counts finished work, so the rate starts from that count.
    const digits = progress.unit === 'bytes' ? 0 : 1;
    const rate = seconds > 0 ? ((progress.done - current.startDone) / seconds).toFixed(digits) : '0';
    current.bar.setTotal(progress.total);
    current.bar.update(progress.done, { task: progress.task, unit: progress.unit, rate });
    if (progress.done >= progress.total) {
      bars.remove(current.bar);
      current = undefined;
    }
  };
}

/**
 * Logs a task's progress at every quarter, with rate and estimated time left. Tasks shorter than a few
 * seconds log nothing, because the line that follows them (an epoch's metrics, say) already reports them.
 */
function lineProgress(log: LogCallback): ProgressCallback {
  const quietSeconds = 3;
  let current: { task: string; started: number; startDone: number; nextQuarter: number } | undefined;
  return (progress: Progress) => {
    if (!current || current.task !== progress.task) {
      current = { task: progress.task, started: performance.now(), startDone: progress.done, nextQuarter: 1 };
    }
    const fraction = progress.total > 0 ? progress.done / progress.total : 1;
    const seconds = (performance.now() - current.started) / 1000;
    const finished = progress.done >= progress.total;
    if (fraction * 4 >= current.nextQuarter && seconds >= quietSeconds && !finished) {
      current.nextQuarter = Math.floor(fraction * 4) + 1;
      const rate = (progress.done - current.startDone) / seconds;
      const remaining = rate > 0 ? (progress.total - progress.done) / rate : 0;
      log('info', `${progress.task}: ${progress.done}/${progress.total} ${progress.unit}, ${rate.toFixed(1)} ${progress.unit}/s, ${remaining.toFixed(0)} s left`);
    }
    if (finished) {
      current = undefined;
    }
  };
}
