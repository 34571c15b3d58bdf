// Preloaded into the proxy by bench/alloc-profile.ts (--import): V8's sampling heap profiler with
// the objects that garbage collection already freed kept in the samples, so the profile shows what
// each function allocates, not only what is still alive (Node's --heap-prof keeps only the live).
// Sampling starts at SIGUSR2 (sent once the proxy is ready: start-up left out); the profile is
// written to SOCKS4_HEAP_SAMPLE_OUT when the process exits.
import { writeFileSync } from 'node:fs';
import inspector from 'node:inspector';

const out = process.env.SOCKS4_HEAP_SAMPLE_OUT;
if (out !== undefined) {
  const session = new inspector.Session();
  session.connect();
  session.post('HeapProfiler.enable');
  process.once('SIGUSR2', () => {
    session.post('HeapProfiler.startSampling', {
      samplingInterval: 2048,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
  });
  // An in-process inspector session answers synchronously, so this still runs inside 'exit'.
  process.on('exit', () => {
    session.post('HeapProfiler.stopSampling', (error, result) => {
      if (error === null) writeFileSync(out, JSON.stringify(result.profile));
    });
  });
}
