// Lease decisions (pure) and the elector's timing rules, on a Lease store with the API server's
// optimistic concurrency (a write with a stale resourceVersion fails) and a clock moved by hand.
// The real Lease on a real API server is exercised in failover.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decideLease,
  LeaderElector,
  type LeaseClient,
  type LeaseView,
  type LeaseWrite,
} from '../../operator/leader-election.ts';
import type { Scheduler } from '../../operator/queue.ts';

const lease = (holder: string | null, rv = '1', seconds = 15): LeaseView => ({
  resourceVersion: rv,
  holderIdentity: holder,
  leaseDurationSeconds: seconds,
  leaseTransitions: 0,
});

test('decideLease: create, renew, take when released or expired, otherwise wait', () => {
  assert.deepEqual(decideLease(null, 'me', 0, 0), { kind: 'create' });
  assert.deepEqual(decideLease(lease('me'), 'me', 0, 99_999), { kind: 'renew' });
  assert.deepEqual(decideLease(lease(null), 'me', 0, 0), { kind: 'take' });
  assert.deepEqual(decideLease(lease(''), 'me', 0, 0), { kind: 'take' });
  assert.deepEqual(decideLease(lease('other'), 'me', 1000, 5000), {
    kind: 'wait',
    holder: 'other',
    remainingMs: 11_000,
  });
  assert.deepEqual(decideLease(lease('other'), 'me', 1000, 16_000), { kind: 'take' });
});

function manualClock(): Scheduler & { advance(ms: number): Promise<void>; freeze(): void } {
  let now = 0;
  let id = 0;
  const timers = new Map<number, { at: number; callback: () => void }>();
  return {
    freeze: () => timers.clear(),
    now: () => now,
    setTimeout(callback, ms) {
      timers.set(++id, { at: now + ms, callback });
      return id;
    },
    clearTimeout: (handle) => void timers.delete(handle as number),
    async advance(ms) {
      const until = now + ms;
      for (let guard = 0; guard < 10_000; guard++) {
        const due = [...timers.entries()].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
        if (due === undefined) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].callback();
        for (let i = 0; i < 20; i++) await Promise.resolve(); // let the tick's awaits settle
      }
      now = until;
    },
  };
}

/** One Lease object with resourceVersion checks, shared by several electors. */
function leaseStore() {
  let record: (LeaseView & { writes: number }) | null = null;
  let version = 0;
  let failing = false;
  // A held request waits for its answer until the test lets it go: a slow API server, a loaded node.
  const held: Partial<Record<'get' | 'update', { arrived: () => void; answer: Promise<void> }>> = {};
  const pass = async (kind: 'get' | 'update'): Promise<void> => {
    const gate = held[kind];
    if (gate === undefined) return;
    delete held[kind];
    gate.arrived();
    await gate.answer;
  };
  const write = (w: LeaseWrite): LeaseView => {
    record = {
      resourceVersion: String(++version),
      holderIdentity: w.holderIdentity,
      leaseDurationSeconds: w.leaseDurationSeconds,
      leaseTransitions: w.leaseTransitions,
      writes: (record?.writes ?? 0) + 1,
    };
    return record;
  };
  const client: LeaseClient = {
    async get() {
      await pass('get');
      if (failing) throw new Error('connection refused');
      return record;
    },
    async create(w) {
      if (failing) throw new Error('connection refused');
      if (record !== null) throw new Error('409 AlreadyExists');
      return write(w);
    },
    async update(rv, w) {
      await pass('update');
      if (failing) throw new Error('connection refused');
      if (record?.resourceVersion !== rv) throw new Error('409 Conflict');
      return write(w);
    },
  };
  return {
    client,
    holder: () => record?.holderIdentity ?? null,
    transitions: () => record?.leaseTransitions,
    writes: () => record?.writes ?? 0,
    setFailing: (f: boolean) => {
      failing = f;
    },
    /** Holds the next request of this kind; `arrived` settles when it is sent, `answer()` lets it through. */
    hold(kind: 'get' | 'update') {
      let arrived!: () => void;
      let answer!: () => void;
      const sent = new Promise<void>((resolve) => (arrived = resolve));
      held[kind] = { arrived, answer: new Promise<void>((resolve) => (answer = resolve)) };
      return { sent, answer };
    },
  };
}

function elector(name: string, client: LeaseClient, scheduler: Scheduler, log: string[]): LeaderElector {
  return new LeaderElector({
    client,
    identity: name,
    scheduler,
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
    onStartedLeading: () => log.push(`${name} leads`),
    onStoppedLeading: () => log.push(`${name} stops`),
  });
}

/** Candidate a alone, leading after its first try. */
async function oneCandidate() {
  const clock = manualClock();
  const store = leaseStore();
  const log: string[] = [];
  const a = elector('a', store.client, clock, log);
  a.start();
  await clock.advance(100);
  return { clock, store, log, a };
}

/** Candidate a starts first and so leads; b starts a moment later as the standby. */
async function twoCandidates() {
  const clock = manualClock();
  const store = leaseStore();
  const log: string[] = [];
  const a = elector('a', store.client, clock, log);
  const b = elector('b', store.client, clock, log);
  a.start();
  await clock.advance(1);
  b.start();
  return { clock, store, log, a, b };
}

test('of two candidates one leads; the other takes over only after the leader stops renewing for a lease duration', async () => {
  const { clock, store, log, a, b } = await twoCandidates();
  await clock.advance(60_000);
  assert.deepEqual(log, ['a leads']);
  assert.equal(a.isLeader(), true);
  assert.equal(b.isLeader(), false);
  // The leader goes silent (crashed, or cut off): its timers no longer run.
  await a.stop({ release: false });
  assert.equal(store.holder(), 'a');
  await clock.advance(14_000);
  assert.equal(b.isLeader(), false, "not before the lease duration has passed on b's clock");
  // b saw a's last renewal (at 60 s) at its next try, up to one jittered retry period (2.4 s)
  // later, and takes the Lease at its first try a lease duration after that: by 79.8 s at most.
  await clock.advance(6_000);
  assert.equal(b.isLeader(), true, 'within a lease duration and two jittered retry periods');
  assert.equal(store.holder(), 'b');
  assert.equal(store.transitions(), 1);
  await b.stop();
});

test('a leader that cannot renew stops counting itself leader after the renew deadline', async () => {
  const { clock, store, log, a } = await oneCandidate();
  assert.equal(a.isLeader(), true);
  store.setFailing(true);
  await clock.advance(8_000);
  assert.equal(a.isLeader(), true, 'within the renew deadline');
  await clock.advance(2_500);
  assert.equal(a.isLeader(), false, 'past the renew deadline: it must not publish any more');
  assert.deepEqual(log, ['a leads', 'a stops']);
  store.setFailing(false);
  await clock.advance(2_500);
  assert.equal(a.isLeader(), true, 'the lease was still its own: it renews and leads again');
  await a.stop();
});

test('a frozen leader (SIGSTOP) is not leader when it wakes, before any timer of its own ran', async () => {
  const { clock, store, a } = await oneCandidate();
  assert.equal(a.isLeader(), true);
  clock.freeze(); // its timers stop firing; the world's clock goes on
  await clock.advance(10_001);
  assert.equal(a.isLeader(), false);
  assert.equal(store.holder(), 'a', 'it could not even tell the API server');
});

test('stop() releases the lease so a standby takes it at its next try instead of waiting it out', async () => {
  const { clock, store, log, a, b } = await twoCandidates();
  await clock.advance(5_000);
  await a.stop();
  assert.equal(store.holder(), null);
  await clock.advance(2_500);
  assert.equal(b.isLeader(), true);
  assert.deepEqual(log, ['a leads', 'a stops', 'b leads']);
  await b.stop();
});

test('SIGTERM during a renew: stop() waits for it and releases with the resourceVersion the renew wrote', async () => {
  const { clock, store, log, a, b } = await twoCandidates();
  await clock.advance(5_000);
  const renew = store.hold('update');
  await clock.advance(2_000); // a's next renew is sent and hangs
  await renew.sent;
  const stopping = a.stop();
  renew.answer(); // the API server accepts it: the record's resourceVersion moves on
  await stopping;
  assert.equal(store.holder(), null, 'released, not left to expire');
  await clock.advance(2_500);
  assert.equal(b.isLeader(), true);
  assert.deepEqual(log, ['a leads', 'a stops', 'b leads']);
  await b.stop();
});

test('a renew answered after the renew deadline: not leader any more, but the record is its own, so stop() releases it', async () => {
  const { clock, store, log, a } = await oneCandidate();
  const renew = store.hold('update');
  await clock.advance(2_000);
  await renew.sent;
  await clock.advance(10_001); // the renew hangs past the 10 s deadline (a loaded node, a slow API server)
  renew.answer();
  for (let i = 0; i < 20; i++) await Promise.resolve();
  assert.equal(a.isLeader(), false, 'a write that came back late proves nothing: it must not publish');
  assert.equal(store.holder(), 'a');
  await a.stop();
  assert.equal(store.holder(), null);
  assert.deepEqual(log, ['a leads', 'a stops']);
});

test('SIGTERM during the read: no renew is written, only the release', async () => {
  const { clock, store, a, b } = await twoCandidates();
  await clock.advance(5_000);
  const read = store.hold('get');
  await clock.advance(2_000);
  await read.sent;
  const writes = store.writes();
  const stopping = a.stop();
  read.answer();
  await stopping;
  assert.equal(store.writes(), writes + 1, 'the release alone');
  assert.equal(store.holder(), null);
  await b.stop();
});

test("a standby's stop() leaves the leader's Lease alone, though it read the record a moment ago", async () => {
  const { clock, store, a, b } = await twoCandidates();
  await clock.advance(5_000);
  const writes = store.writes();
  await b.stop();
  assert.equal(store.holder(), 'a');
  assert.equal(store.writes(), writes, 'not a single write');
  assert.equal(a.isLeader(), true);
  await a.stop();
});

test('stop() never releases a Lease someone else took meanwhile: the release is conditional on the record it saw', async () => {
  const store = leaseStore();
  const log: string[] = [];
  // Each on a clock of its own: a's stands still (SIGSTOP, a stalled node) while b's goes on.
  const [clockA, clockB] = [manualClock(), manualClock()];
  const a = elector('a', store.client, clockA, log);
  const b = elector('b', store.client, clockB, log);
  a.start();
  await clockA.advance(100);
  b.start();
  await clockB.advance(20_000);
  assert.equal(store.holder(), 'b');
  assert.equal(b.isLeader(), true);
  await a.stop(); // a wakes up to SIGTERM, its last record still naming itself
  assert.equal(store.holder(), 'b', "b's Lease stands");
  assert.equal(b.isLeader(), true);
  assert.deepEqual(log, ['a leads', 'b leads', 'a stops']);
  await b.stop();
});

test('the elector refuses timings that would let two leaders overlap', () => {
  const base = { client: leaseStore().client, identity: 'x', onStartedLeading() {}, onStoppedLeading() {} };
  assert.throws(
    () => new LeaderElector({ ...base, leaseDurationMs: 10_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 }),
    /renew deadline/,
  );
  assert.throws(
    () => new LeaderElector({ ...base, leaseDurationMs: 15_000, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 }),
    /retry period/,
  );
  assert.throws(
    () => new LeaderElector({ ...base, leaseDurationMs: 1_500, renewDeadlineMs: 1_000, retryPeriodMs: 500 }),
    /whole seconds/,
  );
});
