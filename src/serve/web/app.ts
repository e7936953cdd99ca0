// Script of the web page. Server mode posts each image to /predict. Browser mode decodes the image,
// computes the same evaluation view as the server (evalView.ts) and runs model.onnx with onnxruntime-web,
// so no image leaves the browser.
import type * as OrtWeb from 'onnxruntime-web';
import { evalView, normalizeView, type PixelImage } from './evalView.js';

/** The fields of model.json that the page uses. */
interface ModelDescription {
  labels: string[];
  thresholds: number[];
  inputName: string;
  inputSize: number;
  normalization: { mean: number[]; std: number[] };
  outputs: { logits: string; probabilities: string };
}

type Mode = 'server' | 'browser';

/** Outcome for one image. */
type Outcome = { probabilities: number[] } | { error: string };

const runtimeModule = '/ort/ort.wasm.min.mjs';
const serverConcurrency = 4;

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) {
    throw new Error(`The page has no element #${id}.`);
  }
  return found as T;
}

const fileInput = element<HTMLInputElement>('files');
const dropZone = element<HTMLLabelElement>('drop');
const browserSwitch = element<HTMLInputElement>('in-browser');
const status = element<HTMLSpanElement>('status');
const results = element<HTMLElement>('results');

let model: ModelDescription | undefined;
let session: Promise<OrtWeb.InferenceSession> | undefined;
let runtime: typeof OrtWeb | undefined;
let currentFiles: File[] = [];
let runNumber = 0;

function setStatus(state: 'idle' | 'busy' | 'done' | 'error', text: string, mode?: Mode): void {
  status.dataset.state = state;
  status.dataset.run = String(runNumber);
  if (mode) {
    status.dataset.mode = mode;
  }
  status.textContent = text;
}

async function loadModelDescription(): Promise<ModelDescription> {
  const response = await fetch('/model/model.json');
  if (!response.ok) {
    throw new Error(`GET /model/model.json failed with status ${response.status}.`);
  }
  return (await response.json()) as ModelDescription;
}

function renderModel(description: ModelDescription): void {
  element('model-summary').textContent =
    `${description.labels.length} labels, input ${description.inputSize}x${description.inputSize} RGB, ` +
    `mean [${description.normalization.mean.join(', ')}], std [${description.normalization.std.join(', ')}]`;
  const thresholds = element('thresholds');
  thresholds.replaceChildren(
    ...description.labels.map((label, index) => {
      const item = document.createElement('span');
      item.dataset.label = label;
      item.dataset.threshold = String(description.thresholds[index]);
      item.textContent = `${label}: ${description.thresholds[index].toFixed(3)}`;
      return item;
    }),
  );
}

/** Loads onnxruntime-web and the model once, on the first use of browser mode. */
function browserSession(): Promise<OrtWeb.InferenceSession> {
  session ??= (async () => {
    const url = runtimeModule;
    runtime = (await import(url)) as typeof OrtWeb;
    runtime.env.wasm.wasmPaths = '/ort/';
    // Threads need cross-origin isolation, which the server enables with COOP and COEP headers.
    runtime.env.wasm.numThreads = globalThis.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
    return runtime.InferenceSession.create('/model/model.onnx', { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  })();
  session.catch(() => {
    session = undefined;
  });
  return session;
}

/**
 * Decodes an image file to RGBA pixels with the EXIF orientation applied. Transparent pixels are
 * composited onto black, as the server does.
 */
async function decodePixels(file: Blob): Promise<PixelImage> {
  const bitmap = await createImageBitmap(file, { imageOrientation: 'from-image', premultiplyAlpha: 'none', colorSpaceConversion: 'default' });
  try {
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const context = canvas.getContext('2d', { willReadFrequently: true });
    if (!context) {
      throw new Error('This browser has no 2D canvas.');
    }
    context.fillStyle = '#000';
    context.fillRect(0, 0, bitmap.width, bitmap.height);
    context.drawImage(bitmap, 0, 0);
    const pixels = context.getImageData(0, 0, bitmap.width, bitmap.height);
    return { width: pixels.width, height: pixels.height, channels: 4, data: pixels.data };
  } finally {
    bitmap.close();
  }
}

async function predictInBrowser(file: File, description: ModelDescription): Promise<Outcome> {
  const inference = await browserSession();
  let pixels: PixelImage;
  try {
    pixels = await decodePixels(file);
  } catch {
    return { error: `${file.name} could not be decoded by this browser. Choose a JPEG, PNG, WebP, GIF or AVIF image.` };
  }
  const size = description.inputSize;
  const input = normalizeView(evalView(pixels, size), size, description.normalization);
  const ort = runtime as typeof OrtWeb;
  const outputs = await inference.run({ [description.inputName]: new ort.Tensor('float32', input, [1, 3, size, size]) });
  const probabilities = outputs[description.outputs.probabilities].data as Float32Array;
  return { probabilities: Array.from(probabilities) };
}

async function predictOnServer(file: File, description: ModelDescription): Promise<Outcome> {
  const form = new FormData();
  form.append('image', file, file.name);
  const response = await fetch('/predict', { method: 'POST', body: form });
  const body = (await response.json()) as { probabilities?: Record<string, number>; message?: string };
  if (!response.ok || !body.probabilities) {
    return { error: body.message ?? `POST /predict failed with status ${response.status}.` };
  }
  const probabilities = body.probabilities;
  return { probabilities: description.labels.map((label) => probabilities[label]) };
}

function renderCard(file: File, outcome: Outcome, description: ModelDescription, mode: Mode): HTMLElement {
  const card = document.createElement('article');
  card.className = 'card';
  card.dataset.file = file.name;
  card.dataset.mode = mode;

  const image = document.createElement('img');
  image.alt = file.name;
  image.src = URL.createObjectURL(file);
  image.addEventListener('load', () => URL.revokeObjectURL(image.src), { once: true });
  const body = document.createElement('div');
  const title = document.createElement('h2');
  title.textContent = file.name;
  body.append(title);
  card.append(image, body);

  if ('error' in outcome) {
    card.dataset.state = 'error';
    const message = document.createElement('p');
    message.className = 'error';
    message.textContent = outcome.error;
    body.append(message);
    return card;
  }

  card.dataset.state = 'done';
  const chips = document.createElement('ul');
  chips.className = 'chips';
  const { labels, thresholds } = description;
  const on = labels.filter((_, index) => outcome.probabilities[index] >= thresholds[index]);
  for (const label of on) {
    const chip = document.createElement('li');
    chip.className = 'chip';
    chip.dataset.label = label;
    chip.textContent = label;
    chips.append(chip);
  }
  if (on.length === 0) {
    const none = document.createElement('li');
    none.className = 'chip none';
    none.textContent = 'no label above its threshold';
    chips.append(none);
  }
  body.append(chips);

  labels.forEach((label, index) => {
    const probability = outcome.probabilities[index];
    const bar = document.createElement('div');
    bar.className = probability >= thresholds[index] ? 'bar on' : 'bar';
    bar.dataset.label = label;
    bar.dataset.probability = String(probability);
    const name = document.createElement('span');
    name.textContent = label;
    const track = document.createElement('span');
    track.className = 'track';
    track.title = `threshold ${thresholds[index]}`;
    const fill = document.createElement('span');
    fill.className = 'fill';
    fill.style.width = `${(probability * 100).toFixed(2)}%`;
    const tick = document.createElement('span');
    tick.className = 'tick';
    tick.style.left = `${(thresholds[index] * 100).toFixed(2)}%`;
    track.append(fill, tick);
    const value = document.createElement('span');
    value.textContent = probability.toFixed(3);
    bar.append(name, track, value);
    body.append(bar);
  });
  return card;
}

/** Tags `files` in the current mode and replaces the result cards. */
async function run(files: File[]): Promise<void> {
  if (!model || files.length === 0) {
    return;
  }
  const description = model;
  const mode: Mode = browserSwitch.checked ? 'browser' : 'server';
  runNumber++;
  const thisRun = runNumber;
  setStatus('busy', mode === 'browser' ? `Tagging ${files.length} image(s) in this browser...` : `Tagging ${files.length} image(s) on the server...`, mode);
  const started = performance.now();
  try {
    const outcomes: Outcome[] = new Array(files.length);
    if (mode === 'browser') {
      // One image at a time keeps the memory of large photos bounded.
      for (const [index, file] of files.entries()) {
        outcomes[index] = await predictInBrowser(file, description);
      }
    } else {
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < files.length) {
          const index = next++;
          outcomes[index] = await predictOnServer(files[index], description).catch((error: unknown) => ({ error: `The request failed: ${String(error)}` }));
        }
      };
      await Promise.all(Array.from({ length: Math.min(serverConcurrency, files.length) }, worker));
    }
    if (thisRun !== runNumber) {
      return;
    }
    results.replaceChildren(...files.map((file, index) => renderCard(file, outcomes[index], description, mode)));
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    setStatus('done', `${files.length} image(s) tagged ${mode === 'browser' ? 'in this browser' : 'by the server'} in ${seconds} s.`, mode);
  } catch (error) {
    if (thisRun === runNumber) {
      setStatus('error', `Tagging failed: ${error instanceof Error ? error.message : String(error)}`, mode);
    }
  }
}

function chooseFiles(files: FileList | null): void {
  currentFiles = Array.from(files ?? []).filter((file) => file.type.startsWith('image/') || file.type === '');
  void run(currentFiles);
}

fileInput.addEventListener('change', () => chooseFiles(fileInput.files));
browserSwitch.addEventListener('change', () => void run(currentFiles));
dropZone.addEventListener('dragover', (event) => {
  event.preventDefault();
  dropZone.classList.add('over');
});
dropZone.addEventListener('dragleave', () => dropZone.classList.remove('over'));
dropZone.addEventListener('drop', (event) => {
  event.preventDefault();
  dropZone.classList.remove('over');
  chooseFiles(event.dataTransfer?.files ?? null);
});

try {
  model = await loadModelDescription();
  renderModel(model);
  setStatus('idle', 'Choose or drop images.');
} catch (error) {
  setStatus('error', `Could not load the model description: ${error instanceof Error ? error.message : String(error)}`);
}
