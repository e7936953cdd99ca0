// Downloads a file over HTTP(S) into a cache with a SHA-256 check. The bytes go to a temporary file
// that is renamed into place only after the hash matches, so an interrupted or corrupt download never
// leaves a file under the final name.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { ProgressCallback } from '../events.js';
import { temporaryPathFor } from '../files/atomic.js';

/** Error for a failed or rejected download. */
export class DownloadError extends Error {
  constructor(
    readonly url: string,
    message: string,
  ) {
    super(message);
    this.name = 'DownloadError';
  }
}

/** Options of {@link downloadFile}. */
export interface DownloadOptions {
  /** Expected lower-case hex SHA-256; the download is rejected when the content differs. */
  sha256: string;
  /** Expected size in bytes, used for progress when the server sends no Content-Length. */
  expectedBytes?: number;
  /** Receives progress in bytes. */
  onProgress?: ProgressCallback;
  /** Cancels the download. */
  signal?: AbortSignal;
}

/**
 * Returns the cache folder: `MULTITAG_CACHE` when set, else `$XDG_CACHE_HOME/multitag`, else the
 * platform's user cache folder.
 */
export function defaultCacheDir(environment: NodeJS.ProcessEnv = process.env): string {
  if (environment.MULTITAG_CACHE) {
    return environment.MULTITAG_CACHE;
  }
  if (environment.XDG_CACHE_HOME) {
    return join(environment.XDG_CACHE_HOME, 'multitag');
  }
  if (process.platform === 'darwin') {
    return join(homedir(), 'Library', 'Caches', 'multitag');
  }
  if (process.platform === 'win32' && environment.LOCALAPPDATA) {
    return join(environment.LOCALAPPDATA, 'multitag', 'cache');
  }
  return join(homedir(), '.cache', 'multitag');
}

/** Computes the lower-case hex SHA-256 of a file. */
export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}

/**
 * Downloads `url` to `target`. The content is streamed into a temporary file beside `target`, hashed
 * on the way, flushed to disk and renamed to `target` only when its SHA-256 matches.
 */
export async function downloadFile(url: string, target: string, options: DownloadOptions): Promise<void> {
  let response: Response;
  try {
    response = await fetch(url, { signal: options.signal, redirect: 'follow' });
  } catch (error) {
    throw new DownloadError(url, `Could not connect to ${url} (${describeCause(error)}). Check the network, or download the file yourself and pass its path to --backbone.`);
  }
  if (!response.ok || !response.body) {
    throw new DownloadError(url, `Download of ${url} failed with HTTP ${response.status} ${response.statusText}. Check the address, or download the file yourself and pass its path to --backbone.`);
  }

  // fetch decodes a compressed body, and Content-Length then counts the compressed bytes, so it only
  // gives the file size when the response has no content encoding.
  const encoding = response.headers.get('content-encoding') ?? 'identity';
  const lengthHeader = encoding === 'identity' ? Number(response.headers.get('content-length')) : Number.NaN;
  const total = Number.isFinite(lengthHeader) && lengthHeader > 0 ? lengthHeader : (options.expectedBytes ?? 0);
  const temporary = temporaryPathFor(target);
  const handle = await open(temporary, 'w');
  const hash = createHash('sha256');
  let received = 0;
  const task = `download ${url.split('/').pop() ?? url}`;

  try {
    try {
      for await (const chunk of response.body) {
        const bytes = chunk as Uint8Array;
        hash.update(bytes);
        await handle.write(bytes);
        received += bytes.length;
        options.onProgress?.({ task, done: received, total: Math.max(total, received), unit: 'bytes' });
      }
    } catch (error) {
      throw new DownloadError(url, `Download of ${url} was interrupted after ${received} of ${total || 'unknown'} bytes (${describeCause(error)}). Nothing was kept; run the command again to restart it.`);
    }
    if (total > 0 && Number.isFinite(lengthHeader) && lengthHeader > 0 && received !== lengthHeader) {
      throw new DownloadError(url, `Download of ${url} ended after ${received} of ${lengthHeader} bytes. Nothing was kept; run the command again to restart it.`);
    }

    const actual = hash.digest('hex');
    if (actual !== options.sha256.toLowerCase()) {
      throw new DownloadError(url, `The file downloaded from ${url} has SHA-256 ${actual}, expected ${options.sha256}. It was discarded; the server may hold another version, or the transfer was corrupted.`);
    }

    await handle.sync();
    await handle.close();
    await rename(temporary, target);
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(temporary, { force: true });
    throw error;
  }
}

/** Options of {@link cachedDownload}. */
export interface CachedDownloadOptions extends DownloadOptions {
  /** Cache folder; defaults to {@link defaultCacheDir}. */
  cacheDir?: string;
}

/**
 * Returns the path of `fileName` in the cache folder, downloading it first when it is missing or its
 * hash does not match.
 */
export async function cachedDownload(url: string, fileName: string, options: CachedDownloadOptions): Promise<string> {
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  await mkdir(cacheDir, { recursive: true });
  const target = join(cacheDir, fileName);
  const existing = await stat(target).catch(() => undefined);
  if (existing?.isFile() && (await sha256OfFile(target)) === options.sha256.toLowerCase()) {
    return target;
  }
  await downloadFile(url, target, options);
  return target;
}

function describeCause(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code) {
    return cause.code;
  }
  return cause?.message ?? (error as Error).message ?? String(error);
}
