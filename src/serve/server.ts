// The HTTP server of `multitag serve`: prediction endpoints, the web page and its files, limits,
// micro-batching, one log line per request and graceful shutdown.
import multipart from '@fastify/multipart';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { Predictor } from '../train/predictor.js';
import { loadPageAssets, type Asset } from './assets.js';
import { InferenceBatcher, QueueFullError, BatcherClosedError, type Admission, type ImageOutputs } from './batcher.js';
import { HttpError, type ErrorBody } from './errors.js';
import { pageHtml, pageSecurityPolicy } from './page.js';
import { checkImageType, decodeUpload, mediaType } from './uploads.js';

/** Settings of the server. */
export interface ServeOptions {
  /** Run folder of `multitag train`, or a folder made by `multitag export`. */
  modelDir: string;
  /** Address to listen on; 127.0.0.1 serves this machine only. */
  host: string;
  /** TCP port; 0 picks a free one. */
  port: number;
  /** Largest request body in bytes; for a batch, the sum of its files. */
  maxBodyBytes: number;
  /** Largest image in pixels (width x height), checked against the file header before decoding. */
  maxPixels: number;
  /** Maximum images being read, decoded, queued or run at once; requests beyond it get 503 with Retry-After. */
  maxPending: number;
  /** Maximum images in one model call. */
  maxBatchSize: number;
  /** Maximum wait in milliseconds for more images to join a model call. */
  maxWaitMs: number;
  /** Maximum files in one /predict/batch request. */
  maxFiles: number;
  /** Time in milliseconds to receive a request and respond to it before it fails with 503. */
  timeoutMs: number;
  /** onnxruntime intra-op threads; defaults to the number of logical cores. */
  threads?: number;
  /** Logger of the server; every request gets one line at level info. */
  logger: Logger;
}

/** Defaults of the options that have one. */
export const defaultServeOptions = {
  host: '127.0.0.1',
  port: 8080,
  maxBodyBytes: 20 * 1024 * 1024,
  maxPixels: 40_000_000,
  maxPending: 64,
  // Batches do not raise throughput on the 2-core machine measured with bench/serve.ts: MobileNetV2 costs
  // about 7 ms per image at batch 1 to 4 and 9 ms at batch 16, and batch 16 adds about 230 MB of memory.
  maxBatchSize: 1,
  maxWaitMs: 5,
  maxFiles: 32,
  timeoutMs: 30_000,
} satisfies Partial<ServeOptions>;

/** A listening server. */
export interface RunningServer {
  /** Base URL, for example http://127.0.0.1:8080. */
  url: string;
  app: FastifyInstance;
  batcher: InferenceBatcher;
  /** Stops accepting connections, finishes the requests in flight, then frees the model. */
  close(): Promise<void>;
}

/** Prediction of one image as sent to clients. */
export interface PredictionBody {
  /** Labels whose probability is at or above their threshold, in the model's label order. */
  labels: string[];
  probabilities: Record<string, number>;
}

/** One record of a /predict/batch response. */
export type BatchRecord = ({ file: string } & PredictionBody) | { file: string; error: ErrorBody };

declare module 'fastify' {
  interface FastifyRequest {
    /** Image slots held by this request. */
    admission?: Admission;
    /** Set when the handler's work owns the admission and releases it when the work ends. */
    admissionOwnedByWork?: boolean;
    /** Images in the request, for the log line. */
    imageCount?: number;
    /** Code and message of the error response, for the log line. */
    failure?: { code: string; message: string };
    /** Files of a batch that got an error record, for the log line. */
    failedFiles?: { file: string; code: string }[];
    /** Timer that fails the request when its body has not arrived within timeoutMs. */
    receiveTimer?: NodeJS.Timeout;
  }
}

const retryAfterSeconds = 1;

/** States a body limit in MiB, the unit of --max-body-mb, with the exact byte count. */
function bodyLimitText(bytes: number): string {
  const mebibytes = Number((bytes / 2 ** 20).toFixed(2));
  return `${mebibytes} MiB (${bytes} bytes, set by --max-body-mb)`;
}

/** Methods of each fixed endpoint path. Another method on one of these paths gets 405 with Allow. */
const endpointMethods: Record<string, readonly string[]> = {
  '/predict': ['POST'],
  '/predict/batch': ['POST'],
  '/labels': ['GET', 'HEAD'],
  '/health': ['GET', 'HEAD'],
  '/': ['GET', 'HEAD'],
};

/** Loads the model and starts listening. */
export async function startServer(options: ServeOptions): Promise<RunningServer> {
  const predictor = await Predictor.load(options.modelDir, { threads: options.threads, decode: { maxPixels: options.maxPixels } });
  const batcher = new InferenceBatcher((views) => predictor.runViews(views), predictor.metadata.labels.length, {
    maxBatchSize: options.maxBatchSize,
    maxWaitMs: options.maxWaitMs,
    maxPending: options.maxPending,
  });
  let app: FastifyInstance;
  try {
    app = await buildApp(predictor, batcher, options);
    await app.listen({ host: options.host, port: options.port });
  } catch (error) {
    await predictor.release();
    throw error;
  }

  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}`,
    app,
    batcher,
    close: () => {
      closing ??= (async () => {
        await app.close();
        await batcher.close();
        await predictor.release();
      })();
      return closing;
    },
  };
}

function sendError(reply: FastifyReply, error: HttpError): FastifyReply {
  reply.request.failure = { code: error.code, message: error.message };
  if (error.allowedMethods !== undefined) {
    reply.header('allow', error.allowedMethods.join(', '));
  }
  if (error.retryAfterSeconds !== undefined) {
    reply.header('retry-after', String(error.retryAfterSeconds));
  }
  return reply.code(error.statusCode).type('application/json; charset=utf-8').send(error.toBody());
}

/**
 * Converts errors from Fastify, its multipart plugin and the batcher into HttpErrors. `contentType` is
 * the request's Content-Type header, which the 415 message names.
 */
function toHttpError(error: FastifyError | Error, options: ServeOptions, contentType?: string): HttpError | undefined {
  if (error instanceof HttpError) {
    return error;
  }
  if (error instanceof QueueFullError) {
    return new HttpError(503, 'queue-full', error.message, retryAfterSeconds);
  }
  if (error instanceof BatcherClosedError) {
    return new HttpError(503, 'shutting-down', error.message, retryAfterSeconds);
  }
  const code = (error as FastifyError).code;
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
    case 'FST_REQ_FILE_TOO_LARGE':
      return new HttpError(413, 'body-too-large', `The request body is larger than this server's limit of ${bodyLimitText(options.maxBodyBytes)}. Send a smaller image.`);
    case 'FST_FILES_LIMIT':
      return new HttpError(413, 'too-many-files', `The request has more than ${options.maxFiles} files. Split it into batches of at most ${options.maxFiles}.`);
    case 'FST_PARTS_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return new HttpError(413, 'too-many-files', `The form has too many parts. Send at most ${options.maxFiles} image files and no other fields.`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new HttpError(415, 'unsupported-media-type', `The request content type ${contentType ? `"${contentType}"` : '(none given)'} is not supported. Send an image with its image/* content type, or multipart/form-data with the image in the field "image".`);
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_PROTO_VIOLATION':
      return new HttpError(400, 'missing-image', `The request body could not be read (${error.message}). Send an image file.`);
    default:
      break;
  }
  // A multipart stream that ends early or is malformed.
  if (/Unexpected end of form|Malformed part header|Multipart: Boundary not found/i.test(error.message)) {
    return new HttpError(400, 'missing-image', `The multipart body is incomplete or malformed (${error.message}). Send a complete multipart/form-data request.`);
  }
  return undefined;
}

/** Runs `work`, or fails with 503 after `remainingMs`. The work keeps its image slots until it really ends. */
async function withTimeout<T>(work: Promise<T>, remainingMs: number, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new HttpError(503, 'timeout', `The request timed out after ${timeoutMs} ms: the upload was too slow or the server is overloaded. Retry later.`, retryAfterSeconds)),
      remainingMs,
    );
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function predictionBody(labels: readonly string[], thresholds: readonly number[], outputs: ImageOutputs): PredictionBody {
  return {
    labels: labels.filter((_, index) => outputs.probabilities[index] >= thresholds[index]),
    probabilities: Object.fromEntries(labels.map((label, index) => [label, outputs.probabilities[index]])),
  };
}

/** Builds the Fastify app without listening, so startServer decides when to listen. */
export async function buildApp(predictor: Predictor, batcher: InferenceBatcher, options: ServeOptions): Promise<FastifyInstance> {
  const { labels, thresholds, inputSize } = predictor.metadata;
  const thresholdRecord = Object.fromEntries(labels.map((label, index) => [label, thresholds[index]]));
  const assets = await loadPageAssets(options.modelDir);
  const startedAt = Date.now();

  const app = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.maxBodyBytes,
    requestTimeout: options.timeoutMs,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  });

  app.addContentTypeParser(/^image\//, { parseAs: 'buffer', bodyLimit: options.maxBodyBytes }, (_request, body, done) => done(null, body));
  await app.register(multipart, {
    throwFileSizeLimit: false,
    limits: { fileSize: options.maxBodyBytes, files: options.maxFiles, fields: 10, parts: options.maxFiles + 10, headerPairs: 100 },
  });

  // Once close() starts, every response carries Connection: close, so keep-alive connections do not
  // keep the shutdown waiting until their idle timeout.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (request, reply) => {
    if (closing) {
      reply.header('connection', 'close');
    }
    reply.header('x-request-id', request.id);
    reply.header('x-content-type-options', 'nosniff');
    // Cross-origin isolation lets onnxruntime-web use WebAssembly threads; the page loads nothing from
    // other origins.
    reply.header('cross-origin-opener-policy', 'same-origin');
    reply.header('cross-origin-embedder-policy', 'require-corp');
  });

  // A body that arrives too slowly would keep its image slot forever, so a request whose handler has not
  // started within timeoutMs gets 503 and its connection is closed.
  app.addHook('onRequest', async (request, reply) => {
    request.receiveTimer = setTimeout(() => {
      if (!request.admissionOwnedByWork && !reply.sent) {
        sendError(reply, new HttpError(503, 'timeout', `The request body did not arrive within ${options.timeoutMs} ms. Send it faster, or retry later.`, retryAfterSeconds));
      }
    }, options.timeoutMs);
  });

  app.addHook('onResponse', async (request, reply) => {
    clearTimeout(request.receiveTimer);
    if (!request.admissionOwnedByWork) {
      request.admission?.release();
    }
    if (!request.raw.complete) {
      // The response went out before the whole body arrived (a timeout or an early error). Destroying
      // the stream stops reading it, and makes a multipart reader fail so its work frees its slots.
      request.raw.destroy();
    }
    request.log.info(
      {
        method: request.method,
        url: request.url,
        statusCode: reply.statusCode,
        responseTimeMs: Number(reply.elapsedTime.toFixed(1)),
        images: request.imageCount,
        error: request.failure,
        failedFiles: request.failedFiles,
      },
      'request completed',
    );
  });
  app.addHook('onRequestAbort', async (request) => {
    clearTimeout(request.receiveTimer);
    if (!request.admissionOwnedByWork) {
      request.admission?.release();
    }
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const httpError = toHttpError(error, options, request.headers['content-type']);
    if (httpError) {
      if (httpError.statusCode >= 500) {
        request.log.warn({ code: httpError.code }, httpError.message);
      }
      return sendError(reply, httpError);
    }
    request.log.error({ err: error }, 'request failed with an unexpected error');
    return sendError(reply, new HttpError(500, 'internal-error', 'The server failed to handle the request. The error is in the server log; please report it.'));
  });

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0];
    const allowed = endpointMethods[path];
    if (allowed !== undefined) {
      return sendError(reply, new HttpError(405, 'method-not-allowed', `${request.method} ${path} is not supported. Use ${allowed.filter((method) => method !== 'HEAD').join(' or ')} ${path}.`, undefined, allowed));
    }
    return sendError(reply, new HttpError(404, 'not-found', `${request.method} ${path} does not exist. The endpoints are POST /predict, POST /predict/batch, GET /labels, GET /health and the page at GET /.`));
  });

  /** Returns the time left of the request's timeoutMs, which started when the request arrived. */
  const remainingMs = (reply: FastifyReply): number => Math.max(1, options.timeoutMs - reply.elapsedTime);

  /** Reserves one image slot before the body is read, so a busy server rejects early. */
  const admitOne = async (request: FastifyRequest): Promise<void> => {
    request.admission = batcher.admit(1);
  };

  const predictOne = async (bytes: Uint8Array, name: string): Promise<ImageOutputs> => {
    const view = await decodeUpload(bytes, name, inputSize, options.maxPixels);
    return batcher.predict(view);
  };

  app.post('/predict', { onRequest: admitOne }, async (request, reply) => {
    request.imageCount = 1;
    const work = (async () => {
      if (request.isMultipart()) {
        const part = await request.file();
        if (part === undefined || part.fieldname !== 'image') {
          part?.file.resume();
          throw new HttpError(400, 'missing-image', 'The form has no file in the field "image". Send the image as multipart/form-data field "image", or as the request body with its image/* content type.');
        }
        const name = part.filename || 'image';
        checkImageType(part.mimetype, name, true);
        const bytes = await part.toBuffer();
        if (part.file.truncated) {
          throw new HttpError(413, 'body-too-large', `${name} is larger than this server's limit of ${bodyLimitText(options.maxBodyBytes)}. Send a smaller image.`);
        }
        return predictOne(bytes, name);
      }
      if (request.body === undefined || request.body === null) {
        throw new HttpError(400, 'missing-image', 'The request has no body. Send the image as the request body with its image/* content type, or as multipart/form-data field "image".');
      }
      // Only the accepted image types reach the handler as a Buffer; JSON or text bodies fail here.
      checkImageType(request.headers['content-type'], 'The request body', false);
      return predictOne(request.body as Buffer, 'The uploaded image');
    })();
    request.admissionOwnedByWork = true;
    void work.finally(() => request.admission?.release()).catch(() => {});
    const outputs = await withTimeout(work, remainingMs(reply), options.timeoutMs);
    return reply.send(predictionBody(labels, thresholds, outputs));
  });

  /** Tags one file of a batch; a problem with the file becomes its error record. */
  const predictRecord = async (bytes: Uint8Array, name: string, mimetype: string, truncated: boolean): Promise<BatchRecord> => {
    try {
      checkImageType(mimetype, name, true);
      if (truncated) {
        throw new HttpError(413, 'body-too-large', `${name} is larger than this server's limit of ${bodyLimitText(options.maxBodyBytes)}. Send a smaller image.`);
      }
      const outputs = await predictOne(bytes, name);
      return { file: name, ...predictionBody(labels, thresholds, outputs) };
    } catch (error) {
      const httpError = error instanceof Error ? toHttpError(error, options) : undefined;
      if (!httpError) {
        throw error;
      }
      return { file: name, error: httpError.toBody() };
    }
  };

  app.post('/predict/batch', async (request, reply) => {
    if (!request.isMultipart()) {
      throw new HttpError(415, 'unsupported-media-type', `POST /predict/batch takes multipart/form-data with one or more image files, got ${mediaType(request.headers['content-type']) || 'no content type'}. Use POST /predict for a single image in the body.`);
    }
    const admissions: Admission[] = [];
    request.admissionOwnedByWork = true;
    const work = (async () => {
      const pending: Promise<BatchRecord>[] = [];
      try {
        let totalBytes = 0;
        for await (const part of request.files()) {
          const name = part.filename || `file ${pending.length + 1}`;
          admissions.push(batcher.admit(1));
          const content = await part.toBuffer();
          // A file over the limit was cut at maxBodyBytes; only its error record is kept.
          const truncated = part.file.truncated;
          const bytes = truncated ? Buffer.alloc(0) : content;
          totalBytes += bytes.length;
          if (totalBytes > options.maxBodyBytes) {
            throw new HttpError(413, 'body-too-large', `The files of this request add up to more than this server's limit of ${bodyLimitText(options.maxBodyBytes)}. Send fewer or smaller images per request.`);
          }
          pending.push(predictRecord(bytes, name, part.mimetype, truncated));
        }
      } catch (error) {
        // Files already started keep their slots until they finish.
        await Promise.allSettled(pending);
        throw error;
      }
      request.imageCount = pending.length;
      if (pending.length === 0) {
        throw new HttpError(400, 'missing-image', 'The form has no files. Send one or more image files as multipart/form-data.');
      }
      const records = await Promise.all(pending);
      const failed = records.flatMap((record) => ('error' in record ? [{ file: record.file, code: record.error.code }] : []));
      if (failed.length > 0) {
        request.failedFiles = failed;
      }
      return records;
    })();
    // Errors are handled through withTimeout below; this branch only frees the slots when the work ends.
    void work.finally(() => admissions.forEach((admission) => admission.release())).catch(() => {});
    const results = await withTimeout(work, remainingMs(reply), options.timeoutMs);
    return reply.send({ thresholds: thresholdRecord, results });
  });

  app.get('/labels', async () => ({ labels, thresholds: thresholdRecord }));

  app.get('/health', async () => ({
    status: 'ok',
    labels: labels.length,
    pendingImages: batcher.pending,
    maxPendingImages: options.maxPending,
    ...batcher.stats,
    uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
  }));

  app.get('/', async (_request, reply) =>
    reply.type('text/html; charset=utf-8').header('content-security-policy', pageSecurityPolicy).header('cache-control', 'no-cache').send(pageHtml),
  );

  const sendAsset = (reply: FastifyReply, asset: Asset | undefined, request: FastifyRequest): FastifyReply => {
    if (!asset) {
      return sendError(reply, new HttpError(404, 'not-found', `${request.url} does not exist.`));
    }
    return reply.type(asset.contentType).header('cache-control', 'no-cache').send(asset.body);
  };
  app.get<{ Params: { file: string } }>('/static/:file', async (request, reply) => sendAsset(reply, assets.scripts.get(request.params.file), request));
  app.get<{ Params: { file: string } }>('/ort/:file', async (request, reply) => sendAsset(reply, assets.runtime.get(request.params.file), request));
  app.get<{ Params: { file: string } }>('/model/:file', async (request, reply) => sendAsset(reply, assets.model.get(request.params.file), request));

  return app;
}
