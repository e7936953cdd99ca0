// Helpers shared by the serve tests: a small model trained once and reused by every test file, servers
// on loopback, and log capture.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { pino, type Logger } from 'pino';
import { readModelMetadata } from '../../src/train/runFolder.js';
import { defaultServeOptions, startServer, type RunningServer, type ServeOptions } from '../../src/serve/server.js';

const run = promisify(execFile);

/** The repository root, found from this file's location in dist/test/serve/. */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const mimlDir = path.resolve(repoRoot, '../shared/data/miml-scenes');
export const sharedBackbone = path.resolve(repoRoot, '../shared/models/mobilenet_v2_1.0_224_imagenet.onnx');
export const cliPath = path.join(repoRoot, 'dist/src/cli/main.js');

/** Shared 224x224 JPEGs of the test split. */
export const testPhotos = ['10.jpg', '1003.jpg', '1007.jpg'].map((file) => path.join(mimlDir, 'test', file));

/**
 * Folder of the model shared by the serve tests. node --test runs the test files one after another in
 * separate processes, so the first file that needs the model trains it and the others reuse it.
 */
const modelCache = path.join(tmpdir(), 'multitag-serve-test-model-v1');

async function isUsableModel(dir: string): Promise<boolean> {
  try {
    await readModelMetadata(dir);
    return (await stat(path.join(dir, 'model.onnx'))).size > 0;
  } catch {
    return false;
  }
}

/** Writes label CSVs with every n-th row of the shared ones and links the shared image folders. */
async function makeSubset(dir: string, trainEvery: number, testEvery: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [split, every] of [['train', trainEvery], ['test', testEvery]] as const) {
    const lines = (await readFile(path.join(mimlDir, `${split}_label.csv`), 'utf8')).trimEnd().split(/\r?\n/);
    // The shared CSVs are grouped by label, so striding keeps every label.
    const kept = [lines[0], ...lines.slice(1).filter((_, index) => index % every === 0)];
    await writeFile(path.join(dir, `${split}_label.csv`), `${kept.join('\n')}\n`);
    await symlink(path.join(mimlDir, split), path.join(dir, split), 'dir');
  }
}

/**
 * Returns the folder of a small trained model (about 100 training images, 2 epochs, frozen backbone),
 * training it with the CLI on first use.
 */
export async function trainedModel(): Promise<string> {
  if (await isUsableModel(modelCache)) {
    return modelCache;
  }
  await stat(mimlDir).catch(() => {
    throw new Error(`The shared data set ${mimlDir} is missing; the serve tests train their model on it.`);
  });
  const work = await mkdtemp(path.join(tmpdir(), 'multitag-serve-train-'));
  try {
    const data = path.join(work, 'data');
    const out = path.join(work, 'run');
    await makeSubset(data, 10, 6);
    await run(process.execPath, [cliPath, 'train', '--data', data, '--backbone', sharedBackbone, '--mean', '0.5', '--std', '0.5', '--out', out, '--epochs', '2', '--no-finetune', '--threads', '2'], { maxBuffer: 64 * 1024 * 1024 });
    await rename(out, modelCache).catch(async (error: NodeJS.ErrnoException) => {
      // Another test process may have finished first; its model is as good as this one.
      if (!(await isUsableModel(modelCache))) {
        throw error;
      }
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return modelCache;
}

/** Creates a pino logger that keeps its JSON lines in memory. */
export function memoryLogger(): { logger: Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  const logger = pino({ level: 'info' }, stream);
  return {
    logger,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

/** Starts a server for `modelDir` on 127.0.0.1 with a free port. */
export async function startTestServer(modelDir: string, overrides: Partial<ServeOptions> = {}): Promise<RunningServer> {
  return startServer({
    ...defaultServeOptions,
    modelDir,
    port: 0,
    threads: 2,
    logger: pino({ level: 'silent' }),
    ...overrides,
  });
}

/** Returns a multipart form with the files as field `field`, read from disk. */
export async function formWith(field: string, files: readonly { path: string; type?: string; name?: string }[]): Promise<FormData> {
  const form = new FormData();
  for (const file of files) {
    const bytes = Uint8Array.from(await readFile(file.path));
    form.append(field, new Blob([bytes], { type: file.type ?? 'image/jpeg' }), file.name ?? path.basename(file.path));
  }
  return form;
}

/** A request whose body is sent in two halves, the second only when finish() is called. */
export interface SlowUpload {
  response: Promise<Response>;
  /** Sends the rest of the body. */
  finish(): void;
}

/**
 * Starts POST `url` with `bytes` as a chunked body and sends its second half only on finish(), so the
 * request stays in flight, keeping its image slot, for as long as the test wants.
 */
export function slowUpload(url: string, bytes: Uint8Array, contentType: string): SlowUpload {
  let finish: () => void = () => {};
  const released = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const half = Math.floor(bytes.length / 2);
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      controller.enqueue(bytes.slice(0, half));
      await released;
      controller.enqueue(bytes.slice(half));
      controller.close();
    },
  });
  const init: RequestInit & { duplex: 'half' } = { method: 'POST', headers: { 'content-type': contentType }, body, duplex: 'half' };
  return { response: fetch(url, init), finish };
}
