// errorMessage and asError: what every `catch` in src/ and operator/ turns a caught value into. A
// user reads the message in a one-line error, so an Error's message must come through unchanged and
// anything else thrown must still say something (never "undefined", never a TypeError in the handler).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runInNewContext } from 'node:vm';
import { asError, errorCode, errorMessage, SocksError } from '../../src/errors.ts';

describe('errorMessage', () => {
  test('an Error, or a subclass, gives its message unchanged', () => {
    assert.equal(errorMessage(new Error('connect ECONNREFUSED 127.0.0.1:6379')), 'connect ECONNREFUSED 127.0.0.1:6379');
    assert.equal(errorMessage(new SocksError('DnsFailed', 'no such host')), 'no such host');
    assert.equal(errorMessage(new Error('')), '');
  });

  test('an Error from another realm (fails instanceof) still gives its message', () => {
    const foreign: unknown = runInNewContext('new TypeError("from a vm context")');
    assert.equal(foreign instanceof Error, false);
    assert.equal(errorMessage(foreign), 'from a vm context');
  });

  test('anything else thrown gives String(value)', () => {
    assert.equal(errorMessage('plain string'), 'plain string');
    assert.equal(errorMessage(42), '42');
    assert.equal(errorMessage(null), 'null');
    assert.equal(errorMessage(undefined), 'undefined');
    assert.equal(errorMessage({ message: 7 }), '[object Object]'); // a non-string message is not a message
  });
});

describe('asError', () => {
  test('an Error is returned as it is (stack, class and fields kept)', () => {
    const error = new SocksError('BindFailed', 'bind failed');
    assert.equal(asError(error), error);
  });

  test('anything else is wrapped: the message of errorMessage, the value as its cause', () => {
    const wrapped = asError('redis went away');
    assert.ok(wrapped instanceof Error);
    assert.equal(wrapped.message, 'redis went away');
    assert.equal(wrapped.cause, 'redis went away');
    assert.equal(asError(null).message, 'null');
  });
});

describe('errorCode', () => {
  test("Node's error codes come through; a thrown null, string or non-string code gives undefined", () => {
    const parse = Object.assign(new TypeError('Unknown option'), { code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' });
    assert.equal(errorCode(parse), 'ERR_PARSE_ARGS_UNKNOWN_OPTION');
    assert.equal(errorCode(null), undefined);
    assert.equal(errorCode('ERR_PARSE_ARGS'), undefined);
    assert.equal(errorCode({ code: 7 }), undefined);
    assert.equal(errorCode(new Error('no code')), undefined);
  });
});
