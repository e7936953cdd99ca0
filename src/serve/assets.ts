// Files that the server sends to browsers: the page scripts, the onnxruntime-web runtime and the model.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runFiles } from '../train/runFolder.js';

/** A file held in memory with its content type. */
export interface Asset {
  body: Buffer;
  contentType: string;
}

/** Scripts of the web page, compiled next to this file into web/. */
const pageScripts = ['app.js', 'evalView.js'];

/**
 * Files of the onnxruntime-web package that the page loads: the WebAssembly-only ES module build, its
 * Emscripten loader and the SIMD WebAssembly binary (onnxruntime-web 1.31).
 */
export const runtimeFiles = ['ort.wasm.min.mjs', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm'];

const require = createRequire(import.meta.url);

/** Returns the dist folder of the installed onnxruntime-web package. */
export function runtimeDirectory(): string {
  return dirname(require.resolve('onnxruntime-web/ort-wasm-simd-threaded.wasm'));
}

function contentTypeOf(file: string): string {
  if (file.endsWith('.wasm')) {
    return 'application/wasm';
  }
  if (file.endsWith('.js') || file.endsWith('.mjs')) {
    return 'text/javascript; charset=utf-8';
  }
  if (file.endsWith('.json')) {
    return 'application/json; charset=utf-8';
  }
  return 'application/octet-stream';
}

async function loadAll(directory: string, files: readonly string[]): Promise<Map<string, Asset>> {
  const assets = new Map<string, Asset>();
  for (const file of files) {
    assets.set(file, { body: await readFile(join(directory, file)), contentType: contentTypeOf(file) });
  }
  return assets;
}

/** Everything the page needs, read once at startup so requests never touch the disk. */
export interface PageAssets {
  scripts: Map<string, Asset>;
  runtime: Map<string, Asset>;
  model: Map<string, Asset>;
}

/** Reads the page scripts, the onnxruntime-web files and the model files of `modelDir`. */
export async function loadPageAssets(modelDir: string): Promise<PageAssets> {
  const webDirectory = join(dirname(fileURLToPath(import.meta.url)), 'web');
  return {
    scripts: await loadAll(webDirectory, pageScripts),
    runtime: await loadAll(runtimeDirectory(), runtimeFiles),
    model: await loadAll(modelDir, [runFiles.model, runFiles.modelMetadata]),
  };
}
