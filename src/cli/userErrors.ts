// Tells user mistakes (bad paths, bad data, bad options) from bugs, so the CLI prints a message and
// exits with status 1 for the first, and shows the stack trace only for the second.

/** Names of the error classes that describe a user mistake and carry a message with the fix. */
const userErrorNames = new Set([
  'BackboneError',
  'BadImagesError',
  'DataValidationError',
  'DownloadError',
  'FeatureTensorError',
  'ImageDecodeError',
  'InputPathError',
  'LabelMismatchError',
  'NonFiniteCostError',
  'OnnxFormatError',
  'PreprocessingError',
  'RunFolderError',
  'SafetensorsFormatError',
  'TrainingGraphError',
  'UnfreezeError',
  'UnsupportedOperatorError',
]);

/** Meaning of each file-system error code for the path it names, and the usual fix. */
const fileSystemHints: Record<string, { problem: string; fix: string }> = {
  ENOENT: { problem: 'was not found', fix: 'check the path' },
  EACCES: { problem: 'is not accessible (permission denied)', fix: 'check its permissions or choose another path' },
  EPERM: { problem: 'cannot be changed (operation not permitted)', fix: 'check its permissions or choose another path' },
  ENOSPC: { problem: 'could not be written because the disk is full', fix: 'free space and run the command again' },
  EROFS: { problem: 'is on a read-only file system', fix: 'choose a writable path' },
  EISDIR: { problem: 'is a folder where a file was expected', fix: 'pass the path of a file' },
  ENOTDIR: { problem: 'has a part that is not a folder', fix: 'check the path' },
};

/** A file-system error explained for a user: the path, what is wrong with it, and the usual fix. */
export interface FileSystemProblem {
  code: string;
  path: string;
  problem: string;
  fix: string;
}

/** Explains a file-system error with a known code, or returns undefined for any other error. */
export function fileSystemProblem(error: unknown): FileSystemProblem | undefined {
  if (!(error instanceof Error)) {
    return undefined;
  }
  const code = (error as NodeJS.ErrnoException).code;
  const hint = code === undefined ? undefined : fileSystemHints[code];
  if (code === undefined || hint === undefined) {
    return undefined;
  }
  return { code, path: (error as NodeJS.ErrnoException).path ?? 'A file', ...hint };
}

/** Fixes for errors of a server that cannot listen on its address. */
const listenHints: Record<string, string> = {
  EADDRINUSE: 'is already in use by another program; stop it, or pass another --port (0 picks a free one)',
  EADDRNOTAVAIL: 'is not an address of this machine; pass --host 127.0.0.1 or an address this machine has',
  EACCES: 'needs more privileges; pass a --port above 1023',
};

/** Returns the message for a user mistake, or undefined when the error is a bug. */
export function userErrorMessage(error: unknown): string | undefined {
  if (!(error instanceof Error)) {
    return undefined;
  }
  if (userErrorNames.has(error.name)) {
    return error.message;
  }
  const listenError = error as NodeJS.ErrnoException & { address?: string; port?: number };
  const listenHint = listenError.syscall === 'listen' && listenError.code ? listenHints[listenError.code] : undefined;
  if (listenHint) {
    return `Cannot listen on ${listenError.address ?? 'the address'}:${listenError.port ?? '?'}: the address ${listenHint}.`;
  }
  const fault = fileSystemProblem(error);
  return fault === undefined ? undefined : `${fault.path} ${fault.problem}; ${fault.fix}.`;
}
