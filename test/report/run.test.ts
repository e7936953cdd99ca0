// End-to-end tests of the reports on one small trained run: the train command's curves, grid and
// report, evaluate --grid, the audit on labels changed on purpose, and the HTML report in Chromium.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { chromium, type Browser } from 'playwright-core';
import sharp from 'sharp';
import { loadSplit } from '../../src/data/dataset.js';
import { auditLabels } from '../../src/report/audit.js';
import { defaultCurvePanelSize } from '../../src/report/curves.js';
import { chooseGridItems, gridLayout, gridTileBox, isExactMatch } from '../../src/report/grid.js';
import { targetsInLabelOrder } from '../../src/report/labelAnalysis.js';
import { readRunMetrics } from '../../src/report/runConfig.js';
import { Predictor } from '../../src/train/predictor.js';
import { cliPath, repoRoot, sharedBackbone, writeFlippedDataset, type FlippedDataset } from './fixture.js';
import { decodePng, titleColors } from './pictures.js';

const run = promisify(execFile);
const chromiumPath = '/usr/bin/chromium';

let workDir: string;
let runDir: string;
let data: FlippedDataset;

async function multitag(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  try {
    return await run(process.execPath, [cliPath, ...args], { cwd: repoRoot, env: { ...process.env, CI: 'true' }, maxBuffer: 64 * 1024 * 1024 });
  } catch (error) {
    const failure = error as Error & { stderr?: string };
    throw new Error(`multitag ${args.join(' ')} failed: ${failure.message}\n${failure.stderr ?? ''}`);
  }
}

before(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), 'multitag-report-run-'));
  data = await writeFlippedDataset(path.join(workDir, 'data'));
  runDir = path.join(workDir, 'run');
  await multitag(
    'train', '--data', data.dataDir, '--backbone', sharedBackbone, '--mean', '0.5', '--std', '0.5', '--out', runDir,
    '--threads', '2', '--epochs', '8', '--batch-size', '16', '--lr', '0.003', '--finetune-epochs', '1', '--unfreeze', 'last:1',
  );
});

after(async () => {
  await rm(workDir, { recursive: true, force: true });
});

test('train writes curves, grid and report', async () => {
  const curves = await sharp(path.join(runDir, 'curves.png')).metadata();
  assert.equal(curves.format, 'png');
  assert.equal(curves.width, defaultCurvePanelSize.width);
  assert.equal(curves.height, 2 * defaultCurvePanelSize.height);

  const grid = await sharp(path.join(runDir, 'grid.png')).metadata();
  const layout = gridLayout(Math.min(36, data.testCount), 6);
  assert.equal(grid.width, layout.gap + 6 * (layout.tileSize + layout.gap));
  assert.equal(grid.height, layout.headerHeight + layout.rows * (layout.titleHeight + layout.tileSize + layout.gap));
  await access(path.join(runDir, 'report.html'));
});

test('train writes the audit CSV', async () => {
  const lines = (await readFile(path.join(runDir, 'audit.csv'), 'utf8')).trimEnd().split('\n');
  // One row per image and label of both splits, after the header.
  assert.equal(lines.length - 1, (data.trainCount + data.testCount) * data.labels.length);
  assert.match(lines[0], /file/);
});

test('evaluate --grid titles match predictions', async () => {
  const gridPath = path.join(workDir, 'evaluate-grid.png');
  await multitag('evaluate', '--model', runDir, '--data', data.dataDir, '--grid', gridPath, '--grid-size', '4', '--threads', '2');
  const picture = await decodePng(await readFile(gridPath));
  const layout = gridLayout(16, 4);
  assert.equal(picture.width, layout.gap + 4 * (layout.tileSize + layout.gap));
  assert.equal(picture.height, layout.headerHeight + 4 * (layout.titleHeight + layout.tileSize + layout.gap));

  // The run's seed is 0, the default; the grid shows the first 16 test images in that seed's order.
  const { split } = await loadSplit('test', path.join(data.dataDir, 'test_label.csv'), path.join(data.dataDir, 'test'));
  const chosen = chooseGridItems(split.items.map((_, index) => index), 16, 0);
  const predictor = await Predictor.load(runDir, { threads: 2 });
  try {
    const { labels, thresholds } = predictor.metadata;
    const targets = targetsInLabelOrder(split, labels);
    const { predictions } = await predictor.predictFiles(chosen.map((index) => split.items[index].path));
    let matches = 0;
    chosen.forEach((index, tile) => {
      const exact = isExactMatch({
        trueLabels: labels.filter((_, label) => targets[index * labels.length + label] === 1),
        predictedLabels: labels.filter((_, label) => predictions[tile].probabilities[label] >= thresholds[label]),
      });
      matches += exact ? 1 : 0;
      const box = gridTileBox(layout, tile);
      const colors = titleColors(picture, box.x, box.y, layout.tileSize, layout.titleHeight - 4);
      const name = `tile ${tile} (${split.items[index].file}, ${exact ? 'exact match' : 'wrong'})`;
      if (exact) {
        assert.ok(colors.green > 50, `${name} has ${colors.green} green title pixels`);
        assert.equal(colors.red, 0, `${name} has red title pixels`);
      } else {
        assert.ok(colors.red > 50, `${name} has ${colors.red} red title pixels`);
        assert.equal(colors.green, 0, `${name} has green title pixels`);
      }
    });
    // The check above covers both colours only when the grid has both kinds of tile.
    assert.ok(matches > 0, 'no tile is an exact match');
    assert.ok(matches < 16, 'every tile is an exact match');
  } finally {
    await predictor.release();
  }
});

test('audit ranks flipped labels first', async () => {
  const audit = await auditLabels({ modelDir: runDir, dataDir: data.dataDir, threads: 2 });
  assert.equal(audit.images.length, data.trainCount + data.testCount);
  const top = audit.images.slice(0, 10);
  const found = data.flipped.filter((flip) => top.some((image) => image.file === flip.file));
  assert.ok(found.length >= 4, `only ${found.map((flip) => flip.file).join(', ') || 'none'} of the flipped images rank in the top 10: ${top.map((image) => image.file).join(', ')}`);
  for (const flip of found) {
    const image = top.find((item) => item.file === flip.file)!;
    assert.equal(image.split, flip.split);
    assert.ok([flip.removed, flip.added].includes(audit.labels[image.worstLabel]), `${flip.file} blames ${audit.labels[image.worstLabel]}`);
  }
});

test('audit command writes gallery and CSV', async () => {
  // The output folder does not exist yet, so the command has to create it.
  const htmlPath = path.join(workDir, 'audit', 'suspects.html');
  const { stdout } = await multitag('audit', '--model', runDir, '--data', data.dataDir, '--out', htmlPath, '--top', '12', '--threads', '2');

  const csv = (await readFile(path.join(workDir, 'audit', 'suspects.csv'), 'utf8')).trim().split('\n');
  assert.equal(csv[0], 'rank,file,split,label,given,probability,score');
  assert.equal(csv.length, 1 + (data.trainCount + data.testCount) * data.labels.length);
  const html = await readFile(htmlPath, 'utf8');
  assert.equal(html.match(/<figure class="suspect"/g)?.length, 12);
  assert.equal(html.match(/<img src="data:image\/jpeg;base64,/g)?.length, 12);
  assert.doesNotMatch(html, /(src|href)="(https?:|\/\/)/);
  assert.match(stdout, /^ +1\. (train|test) +\S+: given \S+=[01], model says /m);
});

test('report opens in Chromium without errors', async (t) => {
  try {
    await access(chromiumPath);
  } catch {
    assert.fail(`Chromium was not found at ${chromiumPath}; the HTML report test needs it. Install it with: apt-get update && apt-get install -y chromium`);
  }
  const reportPath = path.join(workDir, 'report-command.html');
  await multitag('report', '--model', runDir, '--data', data.dataDir, '--out', reportPath, '--grid-size', '3', '--suspects', '6', '--threads', '2');
  const stored = await readRunMetrics(runDir);
  assert.ok(stored.length > 0, 'the run wrote no metrics.json');

  for (const page of [reportPath, path.join(runDir, 'report.html')]) {
    let browser: Browser | undefined;
    try {
      browser = await chromium.launch({
        executablePath: chromiumPath,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
      });
      const tab = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      const problems: string[] = [];
      tab.on('console', (message) => {
        if (message.type() === 'error' || message.type() === 'warning') {
          problems.push(`${message.type()}: ${message.text()}`);
        }
      });
      tab.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
      tab.on('request', (request) => {
        if (!/^(data|file):/.test(request.url())) {
          problems.push(`request to ${request.url()}`);
        }
      });
      await tab.goto(`file://${page}`, { waitUntil: 'load' });

      for (const [column, entry] of stored.entries()) {
        for (const key of ['microF1', 'macroF1', 'mAP'] as const) {
          assert.equal(await tab.textContent(`[data-metric="run-${column}-${key}"]`), entry.metrics[key].toFixed(4), `${path.basename(page)}: ${entry.title} ${key}`);
        }
      }
      assert.match((await tab.textContent('[data-metric="evaluation-microF1"]')) ?? '', /^[01]\.\d{4}$/);
      for (const heading of ['Metrics', 'Training curves', 'Per label', 'Label co-occurrence', 'Sanity grid', 'Mislabel suspects', 'Configuration']) {
        assert.ok(await tab.isVisible(`h2:text-is("${heading}")`), `${path.basename(page)} has no visible section ${heading}`);
      }
      // Every picture is an embedded data URI that the browser decoded.
      const pictures = await tab.$$eval('img', (images) => images.map((image) => ({ source: image.src.slice(0, 22), width: image.naturalWidth })));
      assert.ok(pictures.length >= 4, `${pictures.length} pictures`);
      for (const picture of pictures) {
        assert.match(picture.source, /^data:image\/(png|jpeg);/);
        assert.ok(picture.width > 0, `a picture (${picture.source}) did not decode`);
      }
      assert.deepEqual(problems, []);

      const screenshot = await tab.screenshot({ fullPage: true });
      const size = await sharp(screenshot).metadata();
      t.diagnostic(`${path.basename(page)} renders ${size.width}x${size.height} pixels`);
      assert.ok((size.height ?? 0) > 2000);
    } finally {
      await browser?.close();
    }
  }
});
