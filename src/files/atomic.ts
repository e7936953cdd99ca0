// Crash-safe file writing: data goes to a temporary file in the same folder, is flushed to disk, and
// then renamed over the target, so a reader sees either the old file or the complete new one.
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Returns a temporary path beside `target`, unique per call. */
export function temporaryPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/**
 * Writes `data` to `target` atomically: write to a temporary file, fsync, rename. On failure the
 * temporary file is removed and `target` keeps its previous content.
 */
export async function writeFileAtomic(target: string, data: string | Uint8Array | readonly Uint8Array[]): Promise<void> {
  const temporary = temporaryPathFor(target);
  const handle = await open(temporary, 'w');
  try {
    const chunks = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
    for (const chunk of chunks) {
      await handle.write(chunk);
    }
    await handle.sync();
    await handle.close();
    await rename(temporary, target);
    await syncFolder(dirname(target));
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(temporary, { force: true });
    throw error;
  }
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
