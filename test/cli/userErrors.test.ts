import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { userErrorMessage } from '../../src/cli/userErrors.js';

test('busy port is a user error', async () => {
  const first = createServer();
  await new Promise<void>((resolve) => first.listen(0, '127.0.0.1', resolve));
  const port = (first.address() as { port: number }).port;
  const second = createServer();
  const error = await new Promise<Error>((resolve) => {
    second.once('error', resolve);
    second.listen(port, '127.0.0.1');
  });
  first.close();

  const message = userErrorMessage(error);
  assert.ok(message, 'EADDRINUSE is reported without a stack trace');
  assert.match(message, new RegExp(`127\\.0\\.0\\.1:${port}`));
  assert.match(message, /--port/);
});

test('unknown error stays internal', () => {
  assert.equal(userErrorMessage(new TypeError('x is undefined')), undefined);
});
