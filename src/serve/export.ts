// `multitag export`: copies a trained model into a folder of its own, with the browser preprocessing
// script and a README on using it from Node and from browsers.
import { mkdir, readdir, readFile, realpath, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isTemporaryFileName, writeFileAtomic } from '../files/atomic.js';
import { readModelMetadata, RunFolderError, runFiles, type ModelMetadata } from '../train/runFolder.js';

/** Names of the files in an export folder. */
export const exportFiles = {
  model: runFiles.model,
  metadata: runFiles.modelMetadata,
  /** The evaluation view and normalisation in plain JavaScript, for browsers (src/serve/web/evalView.ts). */
  preprocess: 'preprocess.js',
  readme: 'README.md',
} as const;

/** Files written by exportModel. */
export interface ExportResult {
  outDir: string;
  files: string[];
  metadata: ModelMetadata;
}

async function resolvedPath(path: string): Promise<string | undefined> {
  return realpath(path).catch(() => undefined);
}

/**
 * Copies model.onnx and model.json of `modelDir` into `outDir` (created if missing), adds
 * preprocess.js and README.md, and returns the files written. Every file is written atomically, so an
 * existing export is replaced file by file and never left half-written.
 */
export async function exportModel(modelDir: string, outDir: string): Promise<ExportResult> {
  const metadata = await readModelMetadata(modelDir);
  const modelPath = join(modelDir, runFiles.model);
  let model: Buffer;
  try {
    model = await readFile(modelPath);
  } catch {
    throw new RunFolderError(`${modelPath} was not found, so ${modelDir} contains no finished model. Pass the --out folder of a training run that saved a best model.`);
  }

  const existing = await stat(outDir).catch(() => undefined);
  if (existing && !existing.isDirectory()) {
    throw new RunFolderError(`--out ${outDir} is a file, not a folder. Choose a folder path for the export.`);
  }
  const [source, target] = await Promise.all([resolvedPath(modelDir), resolvedPath(outDir)]);
  if (source !== undefined && source === target) {
    throw new RunFolderError(`--out ${outDir} is the model folder itself. Choose another folder for the export.`);
  }
  if (existing) {
    await checkExportFolder(outDir);
  }
  await mkdir(outDir, { recursive: true });

  const preprocess = await readFile(join(dirname(fileURLToPath(import.meta.url)), 'web', 'evalView.js'), 'utf8');
  const written: [string, string | Uint8Array][] = [
    [exportFiles.model, model],
    [exportFiles.metadata, `${JSON.stringify(metadata, null, 2)}\n`],
    [exportFiles.preprocess, preprocess.replace(/\n\/\/# sourceMappingURL=.*\n?$/, '\n')],
    [exportFiles.readme, exportReadme(metadata)],
  ];
  for (const [name, data] of written) {
    await writeFileAtomic(join(outDir, name), data);
  }
  return { outDir, files: written.map(([name]) => name), metadata };
}

/** Returns the README of an export folder, with this model's labels and preprocessing filled in. */
export function exportReadme(metadata: ModelMetadata): string {
  const { labels, thresholds, inputName, inputSize, normalization, outputs } = metadata;
  const shortSide = Math.round((inputSize * 230) / 224);
  const labelRows = labels.map((label, index) => `| ${label} | ${thresholds[index]} |`).join('\n');
  return `# multitag model

A multi-label image classifier exported by \`multitag export\`.

| File | Contents |
| --- | --- |
| \`model.onnx\` | the network: input \`${inputName}\` float32 [batch, 3, ${inputSize}, ${inputSize}], outputs \`${outputs.logits}\` and \`${outputs.probabilities}\` float32 [batch, ${labels.length}] |
| \`model.json\` | labels, decision thresholds and preprocessing |
| \`preprocess.js\` | the preprocessing below in plain JavaScript (an ES module without imports), for browsers |

Labels and thresholds (a label applies when its probability is at or above its threshold):

| Label | Threshold |
| --- | --- |
${labelRows}

## Preprocessing

1. Decode to 8-bit RGB with the EXIF orientation applied; composite transparent pixels onto black.
2. Resize so the short side is ${shortSide} pixels (round(${inputSize} * 230 / 224)) and the long side is
   floor(${shortSide} * long / short), with a triangle (bilinear) filter.
3. Crop the central ${inputSize}x${inputSize} pixels; the offsets are (resized - ${inputSize}) / 2 rounded half to even.
4. Convert to float32 (pixel / 255 - mean[c]) / std[c] with mean [${normalization.mean.join(', ')}] and
   std [${normalization.std.join(', ')}], in channel-first (CHW) order R, G, B.

multitag computes steps 1 to 3 with sharp (libvips). \`preprocess.js\` ports that resize to plain
JavaScript on decoded pixels. In multitag's tests its views equal sharp's when shrinking, and when
enlarging at most a few values in a thousand differ, by one level. sharp decodes a JPEG whose short side
is at least 3 x ${shortSide} pixels at reduced scale, which a browser cannot do, so such JPEGs give slightly
different probabilities. A canvas or another library's resize filter gives probabilities that differ by
up to about 0.15.

## Node.js (onnxruntime-node and sharp)

Install the two packages with \`ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node sharp\`: the CPU
binaries ship inside the onnxruntime-node package, and the variable stops its install script from
downloading anything else.

\`\`\`js
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { evalView, normalizeView } from './preprocess.js';
import { readFile } from 'node:fs/promises';

const meta = JSON.parse(await readFile('model.json', 'utf8'));
const session = await ort.InferenceSession.create('model.onnx');

const { data, info } = await sharp('photo.jpg', { autoOrient: true })
  .flatten({ background: '#000' }).toColourspace('srgb').raw()
  .toBuffer({ resolveWithObject: true });
const view = evalView({ width: info.width, height: info.height, channels: 3, data }, meta.inputSize);
const input = normalizeView(view, meta.inputSize, meta.normalization);

const size = meta.inputSize;
const outputs = await session.run({ [meta.inputName]: new ort.Tensor('float32', input, [1, 3, size, size]) });
const probabilities = outputs[meta.outputs.probabilities].data;
const tags = meta.labels.filter((label, i) => probabilities[i] >= meta.thresholds[i]);
console.log(tags, probabilities);
\`\`\`

With the multitag package itself, \`multitag predict --model DIR photo.jpg\` or the library's
\`Predictor.load(DIR)\` does the same.

## Browser (onnxruntime-web)

Serve this folder and the \`dist\` files of the npm package \`onnxruntime-web\` (\`ort.wasm.min.mjs\`,
\`ort-wasm-simd-threaded.mjs\`, \`ort-wasm-simd-threaded.wasm\`) from your web server, then:

\`\`\`js
import * as ort from '/ort/ort.wasm.min.mjs';
import { evalView, normalizeView } from './preprocess.js';

ort.env.wasm.wasmPaths = '/ort/';
const meta = await (await fetch('model.json')).json();
const session = await ort.InferenceSession.create('model.onnx', { executionProviders: ['wasm'] });

async function tag(file) {
  const bitmap = await createImageBitmap(file, { imageOrientation: 'from-image', premultiplyAlpha: 'none' });
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext('2d');
  context.fillStyle = '#000';
  context.fillRect(0, 0, bitmap.width, bitmap.height);
  context.drawImage(bitmap, 0, 0);
  const pixels = context.getImageData(0, 0, bitmap.width, bitmap.height);
  const size = meta.inputSize;
  const view = evalView({ width: pixels.width, height: pixels.height, channels: 4, data: pixels.data }, size);
  const input = normalizeView(view, size, meta.normalization);
  const outputs = await session.run({ [meta.inputName]: new ort.Tensor('float32', input, [1, 3, size, size]) });
  const probabilities = outputs[meta.outputs.probabilities].data;
  return meta.labels.filter((label, i) => probabilities[i] >= meta.thresholds[i]);
}
\`\`\`

Multi-threaded WebAssembly needs a cross-origin isolated page (the headers
\`Cross-Origin-Opener-Policy: same-origin\` and \`Cross-Origin-Embedder-Policy: require-corp\`); without
them onnxruntime-web runs on one thread.
`;
}

/**
 * Accepts an empty folder or an earlier export, and rejects any other folder, so an export never
 * replaces files of the user's own, such as a project's README.md. An earlier export is a folder whose
 * files all have export names and include the model or its metadata.
 */
async function checkExportFolder(outDir: string): Promise<void> {
  const entries = (await readdir(outDir)).filter((entry) => !isTemporaryFileName(entry));
  const exportNames = new Set<string>(Object.values(exportFiles));
  const onlyExportFiles = entries.every((entry) => exportNames.has(entry));
  const hasModel = entries.includes(exportFiles.model) || entries.includes(exportFiles.metadata);
  if (entries.length > 0 && !(onlyExportFiles && hasModel)) {
    const others = entries.filter((entry) => !exportNames.has(entry) || !hasModel).slice(0, 3);
    throw new RunFolderError(`--out ${outDir} contains files that are not from an earlier export (${others.join(', ')}), which the export could overwrite. Choose a new or empty folder.`);
  }
}
