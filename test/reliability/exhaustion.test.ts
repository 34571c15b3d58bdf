// Resource exhaustion: slowloris clients and a connection burst against a proxy in its own
// process, from attackers in a third. The caps on sessions and handshakes in progress hold,
// memory stays bounded, every burst client gets a reply, and a legitimate client is still served
// (its handshake time under attack is reported beside the idle one). `make test` runs 500
// slowloris + a 1 000 burst; `make soak` (SOAK=1) 5 000 + 10 000.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  megabytes,
  probeLegit,
  settledProcess,
  startAttacker,
  startProxyProcess,
  type Attacker,
} from './exhaustion-harness.ts';

const soak = process.env.SOAK === '1';
const plan = soak
  ? {
      slowloris: 5000,
      byteMs: 3000,
      rampMs: 5000,
      burst: 10_000,
      waves: 5,
      waveGapMs: 600,
      holdMs: 4000,
      probes: 30,
      maxSessions: 2000,
      maxHandshakes: 1000,
      handshakeTimeoutMs: 10_000,
      rssBudgetMb: 400,
    }
  : {
      slowloris: 500,
      byteMs: 1000,
      rampMs: 500,
      burst: 1000,
      waves: 5,
      waveGapMs: 250,
      holdMs: 1500,
      probes: 10,
      maxSessions: 200,
      maxHandshakes: 100,
      handshakeTimeoutMs: 4000,
      rssBudgetMb: 120,
    };

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

test(`${plan.slowloris} slowloris + a ${plan.burst}-connection burst: caps hold, memory bounded, legitimate clients served`, {
  timeout: soak ? 900_000 : 120_000,
}, async (t) => {
  const proxy = await startProxyProcess({
    maxSessions: plan.maxSessions,
    maxHandshakes: plan.maxHandshakes,
    handshakeTimeoutMs: plan.handshakeTimeoutMs,
  });
  let attacker: Attacker | null = null;
  try {
    attacker = await startAttacker(proxy.port, proxy.echoPort);
    const idleRss = proxy.latest().rss;
    const idle = await probeLegit(proxy, plan.probes, 20);

    await attacker.slowloris(plan.slowloris, plan.byteMs, plan.rampMs);
    await sleep(plan.rampMs + 1000);
    const slotsHeld = proxy.latest().handshakes; // the attack fills every handshake slot
    const underSlowloris = await probeLegit(proxy, plan.probes, 50);
    const slowloris = await attacker.stopSlowloris();
    const afterSlowloris = await settledProcess(proxy, plan.handshakeTimeoutMs + 10_000);

    // The burst fills the session cap by design: a legitimate client may be refused (91, at once)
    // and retries, as any client of a full proxy does, until a burst session ends.
    const burstDone = attacker.burst({
      count: plan.burst,
      waves: plan.waves,
      waveGapMs: plan.waveGapMs,
      holdMs: plan.holdMs,
    });
    const underBurst = await probeLegit(proxy, plan.probes, 20, plan.waves * plan.waveGapMs + plan.holdMs + 5000);
    const outcomes = await burstDone;
    const after = await settledProcess(proxy, plan.handshakeTimeoutMs + 10_000);
    const recovered = await probeLegit(proxy, 3, 0);
    const peak = proxy.samples.reduce(
      (m, s) => ({
        rss: Math.max(m.rss, s.rss),
        heap: Math.max(m.heap, s.heapUsed),
        lag: Math.max(m.lag, s.lagMs),
        sessions: Math.max(m.sessions, s.peakSessions),
        handshakes: Math.max(m.handshakes, s.peakHandshakes),
      }),
      { rss: 0, heap: 0, lag: 0, sessions: 0, handshakes: 0 },
    );

    t.diagnostic(
      JSON.stringify({
        caps: {
          maxSessions: plan.maxSessions,
          peakSessions: peak.sessions,
          maxHandshakes: plan.maxHandshakes,
          peakHandshakes: peak.handshakes,
        },
        memoryMb: {
          idleRss: megabytes(idleRss),
          peakRss: megabytes(peak.rss),
          afterRss: megabytes(after.rss),
          peakHeap: megabytes(peak.heap),
        },
        proxyEventLoopLagP99MaxMs: Math.round(peak.lag),
        legitHandshakeMs: { idle, underSlowloris, underBurst, recovered },
        legitSessionEnds: proxy.latest().legitEnds,
        slowloris: { ...slowloris, handshakeSlotsHeld: slotsHeld },
        burst: outcomes,
        afterSlowloris: { sessions: afterSlowloris.sessions, handshakes: afterSlowloris.handshakes },
        afterBurst: { sessions: after.sessions, handshakes: after.handshakes },
      }),
    );

    assert.ok(peak.sessions <= plan.maxSessions, 'session cap exceeded');
    assert.ok(peak.handshakes <= plan.maxHandshakes, 'handshake cap exceeded');
    assert.equal(peak.sessions, plan.maxSessions, 'the attack never reached the session cap: it tested nothing');
    assert.ok(slotsHeld >= plan.maxHandshakes * 0.9, `the attack held only ${slotsHeld} handshake slots`);
    assert.ok(peak.rss - idleRss < plan.rssBudgetMb * 1048576, `RSS grew by ${megabytes(peak.rss - idleRss)} MB`);
    assert.equal(idle.servedFirstTry, idle.tried);
    assert.equal(underSlowloris.servedFirstTry, underSlowloris.tried, 'legitimate clients refused under slowloris');
    assert.equal(underBurst.served, underBurst.tried, 'legitimate clients not served during the burst, even retrying');
    assert.equal(recovered.servedFirstTry, recovered.tried);
    for (const timings of [idle, underSlowloris, underBurst, recovered])
      assert.equal(timings.hungAttempts, 0, 'a legitimate client got no answer');
    // Every burst client got a reply: granted with a working relay, or refused with 91.
    assert.equal(outcomes.granted + outcomes.refused, plan.burst, JSON.stringify(outcomes));
    assert.ok(outcomes.granted >= plan.maxSessions, `only ${outcomes.granted} burst clients served`);
    for (const s of [afterSlowloris, after])
      assert.deepEqual({ sessions: s.sessions, handshakes: s.handshakes }, { sessions: 0, handshakes: 0 });
  } finally {
    await attacker?.exit();
    assert.equal(await proxy.stop(), 0);
  }
});
