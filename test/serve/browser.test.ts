// End-to-end test of the web page in headless Chromium: tags from the server and from onnxruntime-web
// in the browser must agree.
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { RunningServer } from '../../src/serve/server.js';
import { startTestServer, testPhotos, trainedModel } from './fixtures.js';

const chromiumPath = '/usr/bin/chromium';
const chromiumArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

/** Largest difference allowed between probabilities computed in the browser and on the server. */
const browserTolerance = 1e-4;

type CardProbabilities = Map<string, Map<string, number>>;

/** Reads every card's file name, chips and probabilities from the page. */
async function readCards(page: Page): Promise<{ probabilities: CardProbabilities; chips: Map<string, string[]> }> {
  const cards = await page.$$eval('#results .card', (elements) =>
    elements.map((card) => ({
      file: (card as HTMLElement).dataset.file ?? '',
      state: (card as HTMLElement).dataset.state ?? '',
      chips: Array.from(card.querySelectorAll<HTMLElement>('.chip[data-label]'), (chip) => chip.dataset.label ?? ''),
      bars: Array.from(card.querySelectorAll<HTMLElement>('.bar'), (bar) => [bar.dataset.label ?? '', Number(bar.dataset.probability)] as const),
    })),
  );
  for (const card of cards) {
    assert.equal(card.state, 'done', `card ${card.file}`);
  }
  return {
    probabilities: new Map(cards.map((card) => [card.file, new Map(card.bars)])),
    chips: new Map(cards.map((card) => [card.file, card.chips])),
  };
}

async function waitForRun(page: Page, run: number, mode: 'server' | 'browser'): Promise<void> {
  await page.waitForSelector(`#status[data-run="${run}"][data-state="done"], #status[data-state="error"]`, { timeout: 60_000 });
  const state = await page.$eval('#status', (status) => ({ state: (status as HTMLElement).dataset.state, mode: (status as HTMLElement).dataset.mode, text: status.textContent }));
  assert.equal(state.state, 'done', `page status: ${state.text}`);
  assert.equal(state.mode, mode);
}

describe('web page in Chromium', () => {
  let server: RunningServer;
  let browser: Browser;

  before(async () => {
    await access(chromiumPath).catch(() => {
      throw new Error(`Chromium is needed for the web page test but ${chromiumPath} was not found. Install it with: apt-get update && apt-get install -y chromium`);
    });
    server = await startTestServer(await trainedModel());
    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test('browser mode matches server mode', async (t) => {
    const page = await browser.newPage();
    const requests: { method: string; url: string }[] = [];
    const problems: string[] = [];
    page.on('request', (request) => requests.push({ method: request.method(), url: request.url() }));
    page.on('pageerror', (error) => problems.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') {
        problems.push(message.text());
      }
    });

    await page.goto(server.url);
    await page.waitForSelector('#status[data-state="idle"]');
    const thresholds = await page.$$eval('#thresholds [data-label]', (items) => items.map((item) => (item as HTMLElement).dataset.label));
    assert.equal(thresholds.length, 5, 'every label shows its threshold');

    await page.setInputFiles('#files', testPhotos);
    await waitForRun(page, 1, 'server');
    const onServer = await readCards(page);
    assert.deepEqual([...onServer.probabilities.keys()], testPhotos.map((photo) => path.basename(photo)));
    const serverPosts = requests.filter((request) => request.method === 'POST').length;
    assert.equal(serverPosts, testPhotos.length);

    await page.check('#in-browser');
    await waitForRun(page, 2, 'browser');
    const inBrowser = await readCards(page);
    assert.equal(requests.filter((request) => request.method === 'POST').length, serverPosts, 'browser mode sends no image to the server');

    let largest = 0;
    for (const [file, serverProbabilities] of onServer.probabilities) {
      const browserProbabilities = inBrowser.probabilities.get(file);
      assert.ok(browserProbabilities, `browser result for ${file}`);
      for (const [label, probability] of serverProbabilities) {
        const difference = Math.abs((browserProbabilities.get(label) ?? Number.NaN) - probability);
        largest = Math.max(largest, difference);
        assert.ok(difference <= browserTolerance, `${file} ${label}: browser ${browserProbabilities.get(label)}, server ${probability}`);
      }
      assert.deepEqual(inBrowser.chips.get(file), onServer.chips.get(file), `${file} chips`);
    }
    t.diagnostic(`largest browser/server probability difference: ${largest}`);

    for (const request of requests) {
      assert.ok(request.url.startsWith(`${server.url}/`) || request.url.startsWith('blob:'), `request to ${request.url} leaves the server`);
    }
    assert.deepEqual(problems, []);
    await page.close();
  });
});
