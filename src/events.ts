// Callback types through which library code reports progress and log messages. Only the CLI and the
// server turn them into terminal output or log lines, so the library never writes to the terminal.

/** Severity of a log message, as in pino and most logging libraries. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Receives a log message with optional structured fields. */
export type LogCallback = (level: LogLevel, message: string, fields?: Record<string, unknown>) => void;

/** State of one long-running task, such as feature extraction or one epoch. */
export interface Progress {
  /** Short name of the task, for example "features train" or "epoch 3". */
  task: string;
  /** Work units finished so far. */
  done: number;
  /** Work units in the whole task. */
  total: number;
  /** Unit of `done` and `total`, for example "images". */
  unit: string;
}

/** Receives progress updates; called with `done === total` when a task ends. */
export type ProgressCallback = (progress: Progress) => void;

/** A log callback that drops every message. */
export const silentLog: LogCallback = () => {};

/** A progress callback that ignores every update. */
export const silentProgress: ProgressCallback = () => {};
