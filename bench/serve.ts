// Loopback load test of `multitag serve`: POST /predict at several concurrency levels for a fixed time
// each, with and without micro-batching, reporting requests per second, latency percentiles, errors and
// the server's resident memory. Run alone with `node dist/bench/serve.js`.
import { execFile, spawn, type ChildProcessByStdio } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { repositoryRoot, sharedBackbone, sharedData } from './common.js';

const cliPath = join(repositoryRoot, 'dist/src/cli/main.js');

/** Settings of the load test. */
export interface ServeBenchOptions {
  /** Seconds of load per concurrency level. */
  secondsPerLevel: number;
  /** Concurrent clients of each level. */
  concurrencies: number[];
  /** onnxruntime threads of the server. */
  threads: number;
  /** Repetitions of the whole schedule; each level's figures pool all rounds. */
  rounds: number;
}

export const defaultServeBenchOptions: ServeBenchOptions = { secondsPerLevel: 10, concurrencies: [1, 8, 32], threads: 2, rounds: 1 };

/** Server settings compared by the benchmark. */
const configurations = [
  { name: 'batchesOf16', batchSize: 16, batchWaitMs: 5 },
  { name: 'batchesOf4', batchSize: 4, batchWaitMs: 5 },
  { name: 'oneImagePerCall', batchSize: 1, batchWaitMs: 0 },
];

/**
 * Returns the folder of a model for the benchmark, trained once with the CLI on a tenth of the shared
 * training split (frozen backbone, 1 epoch) and kept in the temporary folder. The serving cost depends
 * on the network, not on how well it was trained.
 */
async function benchModel(): Promise<string> {
  const cache = join(tmpdir(), 'multitag-bench-serve-model-v1');
  if (await stat(join(cache, 'model.json')).catch(() => undefined)) {
    return cache;
  }
  const work = await mkdtemp(join(tmpdir(), 'multitag-bench-serve-'));
  try {
    const data = join(work, 'data');
    await mkdir(data);
    for (const [split, every] of [['train', 10], ['test', 6]] as const) {
      const lines = (await readFile(join(sharedData, `${split}_label.csv`), 'utf8')).trimEnd().split(/\r?\n/);
      await writeFile(join(data, `${split}_label.csv`), `${[lines[0], ...lines.slice(1).filter((_, index) => index % every === 0)].join('\n')}\n`);
      await symlink(join(sharedData, split), join(data, split), 'dir');
    }
    const out = join(work, 'run');
    await promisify(execFile)(process.execPath, [cliPath, 'train', '--data', data, '--backbone', sharedBackbone, '--mean', '0.5', '--std', '0.5', '--out', out, '--epochs', '1', '--no-finetune', '--validation-fraction', '0']);
    await rename(out, cache);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return cache;
}

/** Returns the resident set size of process `pid` in MiB, read from /proc (Linux only). */
async function residentMiBOf(pid: number): Promise<number | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined);
  const kib = status?.match(/^VmRSS:\s+(\d+) kB/m)?.[1];
  return kib === undefined ? undefined : Number(kib) / 1024;
}

interface ServerProcess {
  child: ChildProcessByStdio<null, null, Readable>;
  url: string;
}

async function startServerProcess(modelDir: string, threads: number, batchSize: number, batchWaitMs: number): Promise<ServerProcess> {
  const child = spawn(
    process.execPath,
    [cliPath, '--log-format', 'json', 'serve', '--model', modelDir, '--port', '0', '--threads', String(threads), '--batch-size', String(batchSize), '--batch-wait-ms', String(batchWaitMs)],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const url = await new Promise<string>((resolve, reject) => {
    // Every log line is read, so the pipe never fills and blocks the server.
    createInterface({ input: child.stderr }).on('line', (line) => {
      const match = /"url":"(http:\/\/[^"]+)".*"msg":"serving/.exec(line);
      if (match) {
        resolve(match[1]);
      }
    });
    child.on('exit', (code) => reject(new Error(`multitag serve exited with code ${code} before listening`)));
  });
  return { child, url };
}

async function stopServerProcess(server: ServerProcess): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => server.child.on('exit', (code) => resolve(code)));
  server.child.kill('SIGTERM');
  return exited;
}

function percentile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) {
    return Number.NaN;
  }
  return sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)];
}

/** Latencies of the successful requests of one load run, with its error count and duration. */
interface LoadRun {
  latencies: number[];
  errors: number;
  seconds: number;
}

/** Sends POST /predict from `concurrency` clients for `seconds`. */
async function loadLevel(url: string, bodies: readonly Uint8Array<ArrayBuffer>[], concurrency: number, seconds: number): Promise<LoadRun> {
  const latencies: number[] = [];
  let errors = 0;
  let sent = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const client = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const body = bodies[sent++ % bodies.length];
      const requestStarted = performance.now();
      try {
        const response = await fetch(`${url}/predict`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body });
        await response.arrayBuffer();
        if (response.status === 200) {
          latencies.push(performance.now() - requestStarted);
        } else {
          errors++;
        }
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  return { latencies, errors, seconds: (performance.now() - started) / 1000 };
}

/** Summarises the runs of one configuration at one concurrency. */
function summarise(concurrency: number, runs: readonly LoadRun[]): Record<string, number> {
  const latencies = runs.flatMap((run) => run.latencies).sort((a, b) => a - b);
  const seconds = runs.reduce((sum, run) => sum + run.seconds, 0);
  const errors = runs.reduce((sum, run) => sum + run.errors, 0);
  return {
    concurrency,
    seconds: Number(seconds.toFixed(2)),
    requests: latencies.length + errors,
    requestsPerSecond: Number((latencies.length / seconds).toFixed(2)),
    p50Ms: Number(percentile(latencies, 0.5).toFixed(1)),
    p99Ms: Number(percentile(latencies, 0.99).toFixed(1)),
    errors,
  };
}

/**
 * Runs the load test and returns its figures. All configurations run side by side and take turns at
 * every concurrency level of every round, so load from other processes affects them alike.
 */
export async function benchServe(options: Partial<ServeBenchOptions> = {}): Promise<Record<string, unknown>> {
  const settings = { ...defaultServeBenchOptions, ...options };
  const modelDir = await benchModel();
  const photos = ['10.jpg', '1003.jpg', '1007.jpg', '1009.jpg'].map((file) => join(sharedData, 'test', file));
  const bodies = await Promise.all(photos.map(async (photo) => Uint8Array.from(await readFile(photo))));

  const servers: ServerProcess[] = [];
  const results: Record<string, unknown> = {
    secondsPerLevel: settings.secondsPerLevel,
    rounds: settings.rounds,
    threads: settings.threads,
    image: '224x224 JPEG of the shared MIML test split, about 16 KB, raw request body',
  };
  try {
    for (const configuration of configurations) {
      servers.push(await startServerProcess(modelDir, settings.threads, configuration.batchSize, configuration.batchWaitMs));
    }
    const residentBefore: (number | undefined)[] = [];
    for (const server of servers) {
      // Warm-up: the first calls of an onnxruntime session are slower.
      await loadLevel(server.url, bodies, 2, 1);
      residentBefore.push(await residentMiBOf(server.child.pid ?? 0));
    }

    const runs = configurations.map(() => settings.concurrencies.map((): LoadRun[] => []));
    for (let round = 0; round < settings.rounds; round++) {
      for (const [level, concurrency] of settings.concurrencies.entries()) {
        for (const [index, server] of servers.entries()) {
          runs[index][level].push(await loadLevel(server.url, bodies, concurrency, settings.secondsPerLevel));
        }
      }
    }

    for (const [index, configuration] of configurations.entries()) {
      const server = servers[index];
      const health = (await (await fetch(`${server.url}/health`)).json()) as Record<string, unknown>;
      const before = residentBefore[index];
      const afterMiB = await residentMiBOf(server.child.pid ?? 0);
      results[configuration.name] = {
        batchSize: configuration.batchSize,
        batchWaitMs: configuration.batchWaitMs,
        residentBeforeMiB: before === undefined ? undefined : Number(before.toFixed(1)),
        residentAfterMiB: afterMiB === undefined ? undefined : Number(afterMiB.toFixed(1)),
        levels: settings.concurrencies.map((concurrency, level) => summarise(concurrency, runs[index][level])),
        modelCalls: health.modelCalls,
        imagesRun: health.images,
        largestBatch: health.largestBatch,
      };
    }
  } finally {
    for (const [index, server] of servers.entries()) {
      const code = await stopServerProcess(server);
      if (code !== 0) {
        results[`${configurations[index].name}ExitCode`] = code;
      }
    }
  }
  return results;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const seconds = Number(process.env.SERVE_BENCH_SECONDS ?? defaultServeBenchOptions.secondsPerLevel);
  const rounds = Number(process.env.SERVE_BENCH_ROUNDS ?? defaultServeBenchOptions.rounds);
  const results = await benchServe({ secondsPerLevel: seconds, rounds });
  process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
}
