// Reads label CSVs: a header `filename,label1,label2,...`, then one row per image with the image file
// name in the first column and 0 or 1 in every label column.
import path from 'node:path';
import type { DataProblem } from './problems.js';

/** One data row of a label CSV. */
export interface LabelRow {
  /** Image file name as written in the CSV, relative to the split's image folder. */
  file: string;
  /** 1-based line the row starts on. */
  line: number;
  /** 0 or 1 per label, in header order. */
  targets: Uint8Array;
}

/** The valid rows of a label CSV. Rows with an error are left out and reported as problems instead. */
export interface LabelTable {
  csvPath: string;
  /** Label names from the header, without the first (file name) column. */
  labels: string[];
  /** 1-based line of the header, or 0 when the file has no header. */
  headerLine: number;
  rows: LabelRow[];
  /** First-column values of all data rows, rows with errors included, so that their files count as listed. */
  listedFiles: string[];
}

/** One record of a CSV file, before any checks on its meaning. */
export interface CsvRecord {
  /** 1-based line the record starts on. A quoted field may carry the record over more lines. */
  line: number;
  fields: string[];
  /** Syntax error in this record, such as text after a closing quote. */
  error?: string;
}

const COMMA = 0x2c;
const QUOTE = 0x22;
const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const TAB = 0x09;

function skipBlanks(text: string, index: number): number {
  let i = index;
  while (i < text.length) {
    const code = text.charCodeAt(i);
    if (code !== SPACE && code !== TAB) break;
    i++;
  }
  return i;
}

function countLineBreaks(text: string, start: number, end: number): number {
  let count = 0;
  for (let i = start; i < end; i++) {
    const code = text.charCodeAt(i);
    if (code === LF) count++;
    else if (code === CR && text.charCodeAt(i + 1) !== LF) count++;
  }
  return count;
}

/** Index of the next comma or line break at or after `index`, or the text length. */
function findFieldEnd(text: string, index: number): number {
  let i = index;
  while (i < text.length) {
    const code = text.charCodeAt(i);
    if (code === COMMA || code === LF || code === CR) break;
    i++;
  }
  return i;
}

/**
 * Splits CSV text into records as RFC 4180 describes, and accepts more than it requires: a UTF-8 BOM,
 * LF, CRLF or CR line ends, and spaces or tabs around fields. Unquoted fields are trimmed, but quoted
 * fields keep their content as written, with doubled quotes turned into one. Blank lines are skipped.
 * Runs in time linear in the text length.
 */
export function readCsvRecords(text: string): CsvRecord[] {
  const records: CsvRecord[] = [];
  const length = text.length;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;

  while (i < length) {
    const record: CsvRecord = { line, fields: [] };
    let anyQuoted = false;

    for (;;) {
      const start = skipBlanks(text, i);
      let end: number;

      if (start < length && text.charCodeAt(start) === QUOTE) {
        anyQuoted = true;
        const parts: string[] = [];
        let segmentStart = start + 1;
        let closed = false;
        let j = segmentStart;
        for (;;) {
          const quote = text.indexOf('"', j);
          if (quote === -1) break;
          if (text.charCodeAt(quote + 1) === QUOTE) {
            parts.push(text.slice(segmentStart, quote + 1));
            j = quote + 2;
            segmentStart = j;
            continue;
          }
          parts.push(text.slice(segmentStart, quote));
          j = quote + 1;
          closed = true;
          break;
        }
        if (!closed) {
          record.error ??= `quoted field in column ${record.fields.length + 1} is never closed; add the closing double quote`;
          record.fields.push(text.slice(start + 1));
          line += countLineBreaks(text, start, length);
          i = length;
          break;
        }
        line += countLineBreaks(text, start, j);
        record.fields.push(parts.join(''));

        end = skipBlanks(text, j);
        const next = end < length ? text.charCodeAt(end) : -1;
        if (next !== -1 && next !== COMMA && next !== LF && next !== CR) {
          record.error ??=
            `unexpected text after the closing quote in column ${record.fields.length}; ` +
            'a quoted field must end at its closing quote (write a quote inside quotes as "")';
          end = findFieldEnd(text, end);
        }
      } else {
        end = findFieldEnd(text, start);
        record.fields.push(text.slice(start, end).trim());
      }

      if (end < length && text.charCodeAt(end) === COMMA) {
        i = end + 1;
        continue;
      }
      if (end < length) {
        end += text.charCodeAt(end) === CR && text.charCodeAt(end + 1) === LF ? 2 : 1;
        line++;
      }
      i = end;
      break;
    }

    const blank = !anyQuoted && record.fields.length === 1 && record.fields[0] === '';
    if (!blank) records.push(record);
  }
  return records;
}

/** Normal form of a file name for duplicate checks, so that `a.jpg` and `./a.jpg` count as the same. */
function fileKey(file: string): string {
  return path.posix.normalize(file);
}

function checkHeader(header: CsvRecord, csvPath: string, problems: DataProblem[]): string[] {
  const error = (message: string): void => {
    problems.push({ severity: 'error', file: csvPath, line: header.line, message, csvFormat: true });
  };
  const labels = header.fields.slice(1).map((name) => name.trim());
  const firstColumn = new Map<string, number>();
  labels.forEach((name, index) => {
    const column = index + 2;
    if (name === '') {
      error(`header column ${column} has an empty label name; give every label column a name`);
      return;
    }
    const earlier = firstColumn.get(name);
    if (earlier === undefined) {
      firstColumn.set(name, column);
    } else {
      error(`label name "${name}" appears in header columns ${earlier} and ${column}; label names must be unique`);
    }
  });
  return labels;
}

/**
 * Parses label CSV text and checks it: header shape, column counts, 0/1 values, empty and duplicate file
 * names. Returns the valid rows and every problem found. It does not touch the file system, and uses
 * `csvPath` only to name the file in problems.
 */
export function parseLabelCsv(text: string, csvPath: string): { table: LabelTable; problems: DataProblem[] } {
  const problems: DataProblem[] = [];
  const table: LabelTable = { csvPath, labels: [], headerLine: 0, rows: [], listedFiles: [] };
  const error = (line: number, message: string): void => {
    problems.push({ severity: 'error', file: csvPath, line, message, csvFormat: true });
  };

  const records = readCsvRecords(text);
  const header = records[0];
  if (header === undefined) {
    error(1, 'the CSV is empty; expected a header like "filename,label1,label2" followed by one row per image');
    return { table, problems };
  }
  table.headerLine = header.line;
  for (let r = 1; r < records.length; r++) {
    if (records[r].fields[0] !== '') table.listedFiles.push(records[r].fields[0]);
  }
  if (header.error !== undefined) {
    error(header.line, `invalid header: ${header.error}`);
    return { table, problems };
  }
  if (header.fields.length < 2) {
    error(
      header.line,
      `the header has ${header.fields.length} column, expected at least 2: ` +
        'the image file name column followed by one column per label, like "filename,label1,label2"',
    );
    return { table, problems };
  }
  const labels = checkHeader(header, csvPath, problems);
  table.labels = labels;

  if (records.length === 1) {
    error(header.line, 'the CSV has a header but no data rows; add one row per image below the header');
    return { table, problems };
  }

  const columns = header.fields.length;
  const firstLine = new Map<string, number>();
  for (let r = 1; r < records.length; r++) {
    const record = records[r];
    if (record.error !== undefined) {
      error(record.line, record.error);
      continue;
    }
    if (record.fields.length !== columns) {
      error(
        record.line,
        `expected ${columns} columns (file name + ${labels.length} labels) as in the header, ` +
          `found ${record.fields.length}`,
      );
      continue;
    }

    let valid = true;
    const file = record.fields[0];
    if (file.trim() === '') {
      error(record.line, 'the file name in column 1 is empty; write the image file name relative to the image folder');
      valid = false;
    } else {
      const key = fileKey(file);
      const earlier = firstLine.get(key);
      if (earlier === undefined) {
        firstLine.set(key, record.line);
      } else {
        error(record.line, `duplicate file name "${file}", already listed on line ${earlier}; list each image once`);
        valid = false;
      }
    }

    const targets = new Uint8Array(labels.length);
    for (let k = 0; k < labels.length; k++) {
      const value = record.fields[k + 1].trim();
      if (value === '1') {
        targets[k] = 1;
      } else if (value !== '0') {
        error(
          record.line,
          `invalid value "${value}" for label "${labels[k]}" (column ${k + 2}); only 0 and 1 are accepted`,
        );
        valid = false;
      }
    }
    if (valid) table.rows.push({ file, line: record.line, targets });
  }
  return { table, problems };
}
