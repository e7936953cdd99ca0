// Problems found while reading label CSVs and image folders. Loaders collect every problem before
// failing, so a user can fix a whole dataset in one pass instead of one error per run.

/** One problem in a dataset file, with the line it was found on where there is one. */
export interface DataProblem {
  /** An error stops loading, while a warning is returned to the caller and loading goes on. */
  severity: 'error' | 'warning';
  /** Path of the CSV, image or folder that has the problem. */
  file: string;
  /** 1-based line in `file`, for problems inside a CSV. */
  line?: number;
  message: string;
  /** True for a problem with the CSV's own format (header, columns, values), as opposed to the files it lists. */
  csvFormat?: boolean;
}

/** Formats a problem as `file:line: message`, or `file: message` when it has no line. */
export function formatProblem(problem: DataProblem): string {
  const location = problem.line === undefined ? problem.file : `${problem.file}:${problem.line}`;
  return `${location}: ${problem.message}`;
}

const FIX_HINT = 'Fix the listed problems and run the command again.';

const CSV_FORMAT_HINT =
  'Each label CSV needs a header like "filename,label1,label2" and one row per image file with 0 or 1 in ' +
  'every label column.';

/** Error for a dataset with at least one error problem. */
export class DataValidationError extends Error {
  /** Every problem found, warnings included, in the order given to the constructor. */
  readonly problems: DataProblem[];

  /**
   * Builds a message that lists every error problem, one per line, and ends with a line on how to fix
   * them. That line describes the CSV format only when a problem is about the format.
   */
  constructor(problems: DataProblem[]) {
    const errors = problems.filter((problem) => problem.severity === 'error');
    const count = errors.length === 1 ? '1 error' : `${errors.length} errors`;
    const hint = errors.some((problem) => problem.csvFormat === true) ? `${FIX_HINT} ${CSV_FORMAT_HINT}` : FIX_HINT;
    const lines = [`Invalid dataset (${count}):`, ...errors.map(formatProblem), hint];
    super(lines.join('\n'));
    this.name = 'DataValidationError';
    this.problems = problems;
  }

  /** The problems with severity 'error'. */
  get errors(): DataProblem[] {
    return this.problems.filter((problem) => problem.severity === 'error');
  }
}

/** Returns whether any of the problems is an error. */
export function hasErrors(problems: readonly DataProblem[]): boolean {
  return problems.some((problem) => problem.severity === 'error');
}
