// Crash-safe file writing: data goes to a temporary file in the same folder, is flushed to disk, and
// then renamed over the target, so a reader sees either the old file or the complete new one.
import { randomBytes } from 'node:crypto';
import { open, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { runCritical } from './criticalSection.js';

/** Returns a temporary path beside `target`, unique per call. */
export function temporaryPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Returns whether a file name has the form of temporaryPathFor's names: a hidden file ending in .tmp. */
export function isTemporaryFileName(name: string): boolean {
  return name.startsWith('.') && name.endsWith('.tmp');
}

/**
 * Removes the temporary files of writeFileAtomic that a killed process left in `folder`. They never
 * replaced a real file, so nothing is lost. A writer in another process would lose its temporary file
 * too, so pass only a folder that no other process writes to, such as a run folder being resumed.
 */
export async function removeTemporaryFiles(folder: string): Promise<void> {
  for (const entry of await readdir(folder)) {
    if (isTemporaryFileName(entry)) {
      await rm(join(folder, entry), { force: true });
    }
  }
}

/**
 * Writes `data` to `target` atomically: write to a temporary file, fsync, rename. On failure the
 * temporary file is removed and `target` keeps its previous content. The write is a critical section,
 * so a program that waits for those before exiting on Ctrl-C leaves no temporary file behind.
 */
export async function writeFileAtomic(target: string, data: string | Uint8Array | readonly Uint8Array[]): Promise<void> {
  await runCritical(() => writeThroughTemporaryFile(target, data));
}

async function writeThroughTemporaryFile(target: string, data: string | Uint8Array | readonly Uint8Array[]): Promise<void> {
  const temporary = temporaryPathFor(target);
  let handle: FileHandle;
  try {
    handle = await open(temporary, 'w');
  } catch (error) {
    throw nameTarget(error, target);
  }
  try {
    const chunks = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
    for (const chunk of chunks) {
      await writeAll(handle, chunk);
    }
    await handle.sync();
    await handle.close();
    await rename(temporary, target);
    await syncFolder(dirname(target));
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(temporary, { force: true });
    throw nameTarget(error, target);
  }
}

/**
 * Writes the whole chunk. One write may store only part of it, as when the disk fills up, and only the
 * next write then fails with ENOSPC, so the loop continues until every byte is written or a write throws.
 */
async function writeAll(handle: FileHandle, chunk: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < chunk.length) {
    const { bytesWritten } = await handle.write(chunk, offset, chunk.length - offset);
    offset += bytesWritten;
  }
}

/**
 * Sets the path of a file-system error to the target. The error would otherwise name the temporary
 * file, or no file at all for a failed write, and leave a user guessing which file could not be written.
 */
function nameTarget(error: unknown, target: string): unknown {
  const systemError = error as NodeJS.ErrnoException;
  if (error instanceof Error && typeof systemError.code === 'string') {
    systemError.path = target;
  }
  return error;
}

/** Writes a value as indented JSON, atomically. */
export async function writeJsonAtomic(target: string, value: unknown): Promise<void> {
  await writeFileAtomic(target, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Flushes a folder's entries to disk, so a rename into it survives a power cut. Some platforms and file
 * systems cannot open or fsync a folder; there the rename is still atomic, only its durability is less sure.
 */
async function syncFolder(folder: string): Promise<void> {
  let handle;
  try {
    handle = await open(folder, 'r');
    await handle.sync();
  } catch {
    // NOTE: Windows cannot fsync a folder; the rename has already replaced the file atomically.
  } finally {
    await handle?.close();
  }
}
