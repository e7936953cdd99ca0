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

const fileSystemHints: Record<string, string> = {
  ENOENT: 'was not found; check the path',
  EACCES: 'is not accessible (permission denied); check its permissions or choose another path',
  EPERM: 'cannot be changed (operation not permitted); check its permissions or choose another path',
  ENOSPC: 'could not be written because the disk is full; free space and run the command again',
  EROFS: 'is on a read-only file system; choose a writable path',
  EISDIR: 'is a folder where a file was expected',
  ENOTDIR: 'has a part that is not a folder; check the path',
};

/** Returns the message for a user mistake, or undefined when the error is a bug. */
export function userErrorMessage(error: unknown): string | undefined {
  if (!(error instanceof Error)) {
    return undefined;
  }
  if (userErrorNames.has(error.name)) {
    return error.message;
  }
  const systemError = error as NodeJS.ErrnoException;
  if (systemError.code && fileSystemHints[systemError.code]) {
    return `${systemError.path ?? 'A file'} ${fileSystemHints[systemError.code]}.`;
  }
  return undefined;
}
