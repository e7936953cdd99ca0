import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLabelCsv, readCsvRecords } from '../../src/data/labelCsv.js';
import type { DataProblem } from '../../src/data/problems.js';

const CSV = '/data/train_label.csv';

function targetsOf(text: string): Record<string, number[]> {
  const { table } = parseLabelCsv(text, CSV);
  return Object.fromEntries(table.rows.map((row) => [row.file, Array.from(row.targets)]));
}

/** Asserts that `problems` is exactly one problem with these fields and a message matching `pattern`. */
function assertOneProblem(problems: DataProblem[], expected: Omit<DataProblem, 'message'>, pattern: RegExp): void {
  assert.equal(problems.length, 1, `expected one problem, got: ${JSON.stringify(problems)}`);
  const [problem] = problems;
  assert.equal(problem.severity, expected.severity);
  assert.equal(problem.file, expected.file);
  assert.equal(problem.line, expected.line);
  assert.match(problem.message, pattern);
}

test('valid CSV gives labels and rows', () => {
  const { table, problems } = parseLabelCsv('filename,desert,sea\n1.jpg,1,0\n2.jpg,0,1\n', CSV);
  assert.deepEqual(problems, []);
  assert.equal(table.csvPath, CSV);
  assert.deepEqual(table.labels, ['desert', 'sea']);
  assert.equal(table.headerLine, 1);
  assert.deepEqual(
    table.rows.map((row) => [row.file, row.line, Array.from(row.targets)]),
    [
      ['1.jpg', 2, [1, 0]],
      ['2.jpg', 3, [0, 1]],
    ],
  );
  assert.ok(table.rows[0].targets instanceof Uint8Array);
});

test('UTF-8 BOM is ignored', () => {
  const { table, problems } = parseLabelCsv('\uFEFFfilename,a,b\n1.jpg,1,0\n', CSV);
  assert.deepEqual(problems, []);
  assert.deepEqual(table.labels, ['a', 'b']);
  assert.equal(table.rows[0].file, '1.jpg');
  assert.deepEqual(readCsvRecords('\uFEFF"filename",a')[0].fields, ['filename', 'a']);
});

test('CRLF and CR line ends', () => {
  const { table, problems } = parseLabelCsv('filename,a,b\r\n1.jpg,1,0\r\n2.jpg,0,1\r3.jpg,1,1\r\n', CSV);
  assert.deepEqual(problems, []);
  assert.deepEqual(
    table.rows.map((row) => [row.file, row.line]),
    [
      ['1.jpg', 2],
      ['2.jpg', 3],
      ['3.jpg', 4],
    ],
  );
  assert.deepEqual(Array.from(table.rows[2].targets), [1, 1]);
});

test('quoted fields with commas and quotes', () => {
  const text = [
    'filename,"a, b","say ""hi"""',
    '"x, y.jpg",1,0',
    '"the ""best"" one.jpg","0","1"',
    '"",1,1',
  ].join('\n');
  const { table, problems } = parseLabelCsv(text, CSV);
  assert.deepEqual(table.labels, ['a, b', 'say "hi"']);
  assert.deepEqual(
    table.rows.map((row) => [row.file, Array.from(row.targets)]),
    [
      ['x, y.jpg', [1, 0]],
      ['the "best" one.jpg', [0, 1]],
    ],
  );
  // The quoted empty file name on line 4 is still an empty file name.
  assertOneProblem(problems, { severity: 'error', file: CSV, line: 4 }, /file name in column 1 is empty/);
});

test('quoted field over two lines keeps line numbers', () => {
  const text = 'filename,a\n"two\nlines.jpg",1\n3.jpg,7\n';
  const { table, problems } = parseLabelCsv(text, CSV);
  assert.deepEqual(
    table.rows.map((row) => [row.file, row.line]),
    [['two\nlines.jpg', 2]],
  );
  assertOneProblem(problems, { severity: 'error', file: CSV, line: 4 }, /invalid value "7" for label "a"/);
});

test('blank lines anywhere are skipped', () => {
  const text = '\n\nfilename,a,b\n\n1.jpg,1,0\n   \n\n2.jpg,0,1\n\n\n';
  const { table, problems } = parseLabelCsv(text, CSV);
  assert.deepEqual(problems, []);
  assert.equal(table.headerLine, 3);
  assert.deepEqual(
    table.rows.map((row) => [row.file, row.line]),
    [
      ['1.jpg', 5],
      ['2.jpg', 8],
    ],
  );
});

test('whitespace around cells is trimmed', () => {
  const text = ' filename , a ,\tb\t\n  1.jpg , 1 ,0 \n  "2.jpg"  ,0, 1\n';
  const { table, problems } = parseLabelCsv(text, CSV);
  assert.deepEqual(problems, []);
  assert.deepEqual(table.labels, ['a', 'b']);
  assert.deepEqual(targetsOf(text), { '1.jpg': [1, 0], '2.jpg': [0, 1] });
});

test('quoted file name keeps inner spaces', () => {
  assert.deepEqual(targetsOf('filename,a\n" padded.jpg ",1\n'), { ' padded.jpg ': [1] });
});

test('row with no positive label is valid', () => {
  const { table, problems } = parseLabelCsv('filename,a,b\n1.jpg,0,0\n', CSV);
  assert.deepEqual(problems, []);
  assert.deepEqual(Array.from(table.rows[0].targets), [0, 0]);
});

test('first header cell name is free', () => {
  const { table, problems } = parseLabelCsv(',a,b\n1.jpg,0,1\n', CSV);
  assert.deepEqual(problems, []);
  assert.deepEqual(table.labels, ['a', 'b']);
});

test('empty file is an error', () => {
  const { table, problems } = parseLabelCsv('\n  \n', CSV);
  assertOneProblem(problems, { severity: 'error', file: CSV, line: 1 }, /the CSV is empty; expected a header/);
  assert.deepEqual(table.labels, []);
  assert.deepEqual(table.rows, []);
});

test('header with one column is an error', () => {
  const { table, problems } = parseLabelCsv('\nfilename\n1.jpg\n', CSV);
  assertOneProblem(problems, { severity: 'error', file: CSV, line: 2 }, /the header has 1 column, expected at least 2/);
  assert.deepEqual(table.rows, []);
});

test('empty label name is an error', () => {
  const { problems } = parseLabelCsv('filename,a, ,b\n1.jpg,1,0,1\n', CSV);
  assertOneProblem(problems, { severity: 'error', file: CSV, line: 1 }, /header column 3 has an empty label name/);
});

test('duplicate label name is an error', () => {
  const { problems } = parseLabelCsv('filename,sea,a,sea\n1.jpg,1,0,1\n', CSV);
  assertOneProblem(
    problems,
    { severity: 'error', file: CSV, line: 1 },
    /label name "sea" appears in header columns 2 and 4/,
  );
});

test('header without data rows is an error', () => {
  const { problems } = parseLabelCsv('filename,a,b\n\n', CSV);
  assertOneProblem(problems, { severity: 'error', file: CSV, line: 1 }, /has a header but no data rows/);
});

test('row with a missing column is an error', () => {
  const { table, problems } = parseLabelCsv('filename,a,b\n1.jpg,1\n2.jpg,0,1\n', CSV);
  assertOneProblem(
    problems,
    { severity: 'error', file: CSV, line: 2 },
    /expected 3 columns \(file name \+ 2 labels\) as in the header, found 2/,
  );
  assert.deepEqual(
    table.rows.map((row) => row.file),
    ['2.jpg'],
  );
});

test('row with an extra column is an error', () => {
  const { problems } = parseLabelCsv('filename,a,b\n1.jpg,1,0\n2.jpg,0,1,\n', CSV);
  assertOneProblem(problems, { severity: 'error', file: CSV, line: 3 }, /expected 3 columns .*found 4/);
});

test('value other than 0 or 1 is an error', () => {
  for (const value of ['2', '0.0', '1.0', 'yes', '-1', '']) {
    const { table, problems } = parseLabelCsv(`filename,desert,sea\n1.jpg,0,${value}\n`, CSV);
    assertOneProblem(
      problems,
      { severity: 'error', file: CSV, line: 2 },
      new RegExp(`invalid value "${value.replace('.', '\\.')}" for label "sea" \\(column 3\\); only 0 and 1 are accepted`),
    );
    assert.deepEqual(table.rows, [], `row with value "${value}" must be left out`);
  }
});

test('empty file name is an error', () => {
  const { problems } = parseLabelCsv('filename,a\n  ,1\n', CSV);
  assertOneProblem(problems, { severity: 'error', file: CSV, line: 2 }, /the file name in column 1 is empty/);
});

test('duplicate file name names both lines', () => {
  const { table, problems } = parseLabelCsv('filename,a\n1.jpg,1\n2.jpg,0\n./1.jpg,0\n', CSV);
  assertOneProblem(
    problems,
    { severity: 'error', file: CSV, line: 4 },
    /duplicate file name "\.\/1\.jpg", already listed on line 2/,
  );
  assert.deepEqual(
    table.rows.map((row) => row.file),
    ['1.jpg', '2.jpg'],
  );
});

test('file names in different Unicode forms are different', () => {
  const composed = 'caf\u00e9.jpg';
  const decomposed = 'cafe\u0301.jpg';
  const { table, problems } = parseLabelCsv(`filename,a\n${composed},1\n${decomposed},0\n`, CSV);
  assert.deepEqual(problems, []);
  assert.deepEqual(
    table.rows.map((row) => row.file),
    [composed, decomposed],
  );
});

test('unclosed quote is an error', () => {
  const { table, problems } = parseLabelCsv('filename,a\n1.jpg,1\n"2.jpg,0\n3.jpg,1\n', CSV);
  assertOneProblem(problems, { severity: 'error', file: CSV, line: 3 }, /quoted field in column 1 is never closed/);
  assert.deepEqual(
    table.rows.map((row) => row.file),
    ['1.jpg'],
  );
});

test('text after closing quote is an error', () => {
  const { problems } = parseLabelCsv('filename,a\n"1"x.jpg,1\n', CSV);
  assertOneProblem(problems, { severity: 'error', file: CSV, line: 2 }, /unexpected text after the closing quote in column 1/);
});

test('all problems are reported at once', () => {
  const text = ['filename,a,b', '1.jpg,1,2', '2.jpg,1', ',0,0', '1.jpg,0,0', '5.jpg,x,y'].join('\n');
  const { problems } = parseLabelCsv(text, CSV);
  assert.deepEqual(
    problems.map((problem) => [problem.severity, problem.line]),
    [
      ['error', 2],
      ['error', 3],
      ['error', 4],
      ['error', 5],
      ['error', 6],
      ['error', 6],
    ],
  );
  assert.match(problems[4].message, /"x" for label "a"/);
  assert.match(problems[5].message, /"y" for label "b"/);
});

test('large CSV parses in linear time', () => {
  const labels = ['a', 'b', 'c', 'd', 'e'];
  const rowCount = 200_000;
  const lines = [`filename,${labels.join(',')}`];
  for (let i = 0; i < rowCount; i++) {
    const quoted = i % 3 === 0 ? `"img ""${i}"", v.jpg"` : `img${i}.jpg`;
    lines.push(`${quoted},${i % 2},${(i >> 1) % 2},0,1,${i % 5 === 0 ? 1 : 0}`);
  }
  const text = lines.join('\r\n');

  const started = performance.now();
  const { table, problems } = parseLabelCsv(text, CSV);
  const elapsedMs = performance.now() - started;

  assert.deepEqual(problems, []);
  assert.equal(table.rows.length, rowCount);
  assert.equal(table.rows[3].file, 'img "3", v.jpg');
  assert.equal(table.rows[rowCount - 1].line, rowCount + 1);
  const positives = table.rows.reduce((sum, row) => sum + row.targets[0], 0);
  assert.equal(positives, rowCount / 2);
  // Quadratic string building would take minutes here, and the limit leaves room for a slow CI machine.
  assert.ok(elapsedMs < 5000, `parsing ${rowCount} rows took ${elapsedMs.toFixed(0)} ms`);
});

test('readCsvRecords splits fields and lines', () => {
  assert.deepEqual(readCsvRecords('a,"b\r\nc",d\r\n\r\ne'), [
    { line: 1, fields: ['a', 'b\r\nc', 'd'] },
    { line: 4, fields: ['e'] },
  ]);
});
