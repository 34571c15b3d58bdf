// The attackers, in their own process: thousands of sockets and their timers would otherwise
// share an event loop with the legitimate client being timed and slow it down themselves.
// Started by exhaustion-harness.ts; talks over the IPC channel:
//   ← {type: 'slowloris', count, byteMs, rampMs}   → {type: 'slowloris-started'}
//   ← {type: 'slowloris-stop'}                      → {type: 'slowloris-stopped', stats}
//   ← {type: 'burst', plan}                        → {type: 'burst-done', outcomes}
//   ← {type: 'exit'}                                exits
import { burst, startSlowloris, type BurstPlan } from './exhaustion-harness.ts';

const [port, echoPort] = (process.argv[2] ?? '').split(':').map(Number) as [number, number];
let slowloris: ReturnType<typeof startSlowloris> | null = null;
const send = (message: object): void => void process.send?.(message);

process.on('message', (message: { type: string; count: number; byteMs: number; rampMs: number; plan: BurstPlan }) => {
  if (message.type === 'slowloris') {
    slowloris = startSlowloris(port, message.count, message.byteMs, message.rampMs);
    send({ type: 'slowloris-started' });
  } else if (message.type === 'burst') {
    void burst(port, echoPort, message.plan).then((outcomes) => send({ type: 'burst-done', outcomes }));
  } else if (message.type === 'slowloris-stop') {
    slowloris?.stop();
    send({ type: 'slowloris-stopped', stats: slowloris?.stats ?? null });
  } else if (message.type === 'exit') {
    slowloris?.stop();
    process.disconnect?.();
  }
});
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
