// What `make mutate` mutates, module by module, and the test files that guard each module.
// A module's tests are the ones written against it: with perTest coverage Stryker then runs, for
// each mutant, only those of them that executed the mutated line. Each test file is one Stryker
// "test" (the tap runner runs a file per process), so files that start servers cost seconds per
// mutant: they are listed only where the module's behaviour lives in them.
export const modules = {
  protocol: {
    mutate: ['src/protocol/**/*.ts'],
    tests: ['test/protocol/*.test.ts'],
    bar: 85,
  },
  // The decision core: evaluate() and the SSRF guard over parsed addresses and range sets.
  policy: {
    mutate: ['src/policy/{evaluate,guard,ranges,ip}.ts'],
    tests: [
      'test/policy/evaluate.test.ts',
      'test/policy/evaluate-property.test.ts',
      'test/policy/ip-glob.test.ts',
      'test/policy/guard-edges.test.ts',
      'test/policy/ip-parse.test.ts',
      'test/policy/tiers.test.ts',
      'test/policy/guard.test.ts',
    ],
    bar: 85,
  },
  // Compilation to the matcher: globs, the rule index.
  'policy-compile': {
    mutate: ['src/policy/{compile,rule-index,glob}.ts'],
    tests: [
      'test/policy/evaluate.test.ts',
      'test/policy/evaluate-property.test.ts',
      'test/policy/ip-glob.test.ts',
      'test/policy/tiers.test.ts',
      'test/policy/glob-property.test.ts',
      'test/policy/compile.test.ts',
      'test/policy/rule-index.test.ts',
      'test/policy/report.test.ts',
    ],
    bar: 85,
  },
  // Schema validation, loading and explain: mostly messages for people.
  'policy-validate': {
    mutate: ['src/policy/{validate,validate-fields,load,explain}.ts'],
    tests: [
      'test/policy/validate.test.ts',
      'test/policy/validate-messages.test.ts',
      'test/policy/load-messages.test.ts',
      'test/policy/explain-lines.test.ts',
      'test/policy/evaluate.test.ts',
      'test/policy/explain-namespace.test.ts',
      'test/policy/policy-command.test.ts',
    ],
    bar: 85,
  },
  // The pure limiter core and the in-process limiter. The Redis limiter and its internals are left
  // to the Redis suites (test/redis/): each of their test files starts a redis-server and a
  // three-node cluster, seconds per mutant on two shared cores.
  limits: {
    mutate: ['src/limits/**/*.ts', '!src/limits/{redis-limiter,redis-keys,limit-scripts,lease-renewer,quota-pool}.ts'],
    tests: ['test/limits/*.test.ts'],
    bar: 85,
  },
  // The session state machine. Its mutants run the server suites that start proxies and dial
  // through them (seconds per mutant): hours on two shared cores, so it is run on its own, in line
  // ranges (MUTATE_FILES=src/server/session.ts:A-B). Only suites that run the proxy in this process
  // count: Stryker's per-test coverage does not see a spawned CLI (proxy-protocol-session.test.ts
  // has its in-process twin, proxy-header.test.ts). Phases are seen by the span tests, a late
  // lease by deadlines, a client leaving mid-connect by upstream, Report limits by report-limits,
  // a slow Report limiter and a name refused before DNS by session-report.
  session: {
    mutate: ['src/server/session.ts'],
    tests: [
      'test/server/connect.test.ts',
      'test/server/bind.test.ts',
      'test/server/limits-ident.test.ts',
      'test/server/timeouts.test.ts',
      'test/server/proxy-protocol-session.test.ts',
      'test/server/proxy-header.test.ts',
      'test/server/session-life.test.ts',
      'test/server/session-decide.test.ts',
      'test/server/upstream.test.ts',
      'test/server/deadlines.test.ts',
      'test/server/internal-error.test.ts',
      'test/server/canonical-names.test.ts',
      'test/server/report-limits.test.ts',
      'test/server/session-report.test.ts',
      'test/telemetry/session-spans.test.ts',
    ],
    bar: null, // reported without a bar: sockets and timers make some mutants equivalent or untestable
  },
  // Relay and upstream dial, guarded by the suites that move bytes and dial (refused, timeout,
  // unreachable, half-close, source address, a client leaving mid-connect), and the bandwidth
  // tests: the relay's gate handling is what holds a session to its rate.
  relay: {
    mutate: ['src/server/relay.ts', 'src/server/upstream.ts'],
    tests: [
      'test/server/connect.test.ts',
      'test/server/relay.test.ts',
      'test/server/relay-holds.test.ts',
      'test/server/timeouts.test.ts',
      'test/server/upstream.test.ts',
      'test/server/limits-ident.test.ts',
    ],
    bar: null,
  },
};
