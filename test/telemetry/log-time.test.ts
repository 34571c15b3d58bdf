// The log line's "time" field is part of the line's contract (DESIGN.md): the cached formatter
// (built once per second for speed) must print exactly what pino's own isoTime prints, at every
// millisecond position and across second, day and year boundaries, also when the clock goes back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { isoTime } from '../../src/telemetry/logging.ts';

test('isoTime prints the same text as pino.stdTimeFunctions.isoTime', (t) => {
  const instants = [
    0,
    1,
    9,
    10,
    99,
    100,
    999,
    1000,
    1001,
    Date.UTC(2026, 11, 31, 23, 59, 59, 999),
    Date.UTC(2027, 0, 1, 0, 0, 0, 0),
    Date.UTC(2027, 0, 1, 0, 0, 0, 7),
    Date.UTC(2026, 5, 15, 12, 30, 45, 50),
    Date.UTC(2026, 5, 15, 12, 30, 45, 51), // same second, cached
    Date.UTC(2026, 5, 15, 12, 30, 44, 999), // the clock went back a second
  ];
  for (const now of instants) {
    t.mock.method(Date, 'now', () => now);
    assert.equal(isoTime(), pino.stdTimeFunctions.isoTime(), `at ${now}`);
    t.mock.restoreAll();
  }
});
