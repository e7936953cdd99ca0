// HTTP errors of the server, sent as JSON bodies { statusCode, error, code, message }.

/** Machine-readable code of an error response. */
export type ServeErrorCode =
  | 'missing-image'
  | 'invalid-image'
  | 'unsupported-media-type'
  | 'body-too-large'
  | 'too-many-pixels'
  | 'too-many-files'
  | 'queue-full'
  | 'timeout'
  | 'shutting-down'
  | 'not-found'
  | 'method-not-allowed'
  | 'internal-error';

const statusNames: Record<number, string> = {
  400: 'Bad Request',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Body of an error response. */
export interface ErrorBody {
  statusCode: number;
  error: string;
  code: ServeErrorCode;
  message: string;
}

/** An error that becomes an HTTP response with its status and a message naming the next step. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: ServeErrorCode,
    message: string,
    /** Seconds after which a retry may succeed, sent as Retry-After. */
    readonly retryAfterSeconds?: number,
    /** Methods the path accepts, sent as Allow with a 405. */
    readonly allowedMethods?: readonly string[],
  ) {
    super(message);
    this.name = 'HttpError';
  }

  toBody(): ErrorBody {
    return { statusCode: this.statusCode, error: statusNames[this.statusCode] ?? 'Error', code: this.code, message: this.message };
  }
}
