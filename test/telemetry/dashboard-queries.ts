// What a dashboard query refers to, so a test can hold every panel to what the product emits.
// Deliberately small parsers: they read the subset of PromQL and TraceQL our dashboards use and
// throw on anything they do not understand, so a new construct gets looked at instead of passing.

export interface PromqlRefs {
  /** Series names selected (`socks4_sessions_total`, `..._bucket`). */
  readonly metrics: string[];
  /** Label names in matchers, keyed by the series they filter. */
  readonly matchers: { metric: string; label: string }[];
  /** Label names in by / without / on / ignoring clauses. */
  readonly groupings: string[];
}

const PROMQL_FUNCTIONS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'count',
  'topk',
  'bottomk',
  'quantile',
  'stddev',
  'group',
  'rate',
  'irate',
  'increase',
  'delta',
  'deriv',
  'histogram_quantile',
  'time',
  'abs',
  'clamp_min',
  'clamp_max',
  'max_over_time',
  'min_over_time',
  'avg_over_time',
  'label_values',
  'absent',
  'vector',
  'scalar',
]);
const PROMQL_KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
]);

/** Replaces Grafana variables with a value PromQL accepts where they stand. */
export function interpolateGrafana(text: string, values: Readonly<Record<string, string>>): string {
  return text.replace(
    /\$\{(\w+)(?::\w+)?\}|\$(\w+)/g,
    (whole, braced: string | undefined, bare: string | undefined) => {
      const name = (braced ?? bare) as string;
      const value = values[name];
      if (value === undefined) throw new Error(`unknown dashboard variable ${whole}`);
      return value;
    },
  );
}

export function promqlRefs(expr: string): PromqlRefs {
  const strings: string[] = [];
  // Strings out first: their contents are values, not names.
  let rest = expr.replace(/"(?:[^"\\]|\\.)*"/g, (s) => `"${strings.push(s) - 1}"`);
  const metrics: string[] = [];
  const matchers: { metric: string; label: string }[] = [];
  const groupings: string[] = [];
  rest = rest.replace(/\[[^\]]*\]/g, ' '); // range selectors [5m]
  rest = rest.replace(/\b(by|without|on|ignoring)\s*\(([^)]*)\)/g, (_, _kw: string, labels: string) => {
    groupings.push(
      ...labels
        .split(',')
        .map((l) => l.trim())
        .filter((l) => l !== ''),
    );
    return ' ';
  });
  // label_values(metric{...}, label): Grafana's variable query, the label is the second argument.
  rest = rest.replace(/\blabel_values\s*\(([^,()]*),\s*([A-Za-z_]\w*)\s*\)/g, (_, selector: string, label: string) => {
    groupings.push(label);
    return ` (${selector}) `;
  });
  rest = rest.replace(/([A-Za-z_:][\w:]*)?\s*\{([^}]*)\}/g, (_, metric: string | undefined, body: string) => {
    if (metric === undefined) throw new Error(`selector without a metric name in ${expr}`);
    metrics.push(metric);
    for (const part of body
      .split(',')
      .map((p) => p.trim())
      .filter((p) => p !== '')) {
      const m = /^([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"\d+"$/.exec(part);
      if (m === null) throw new Error(`cannot read matcher "${part}" in ${expr}`);
      matchers.push({ metric, label: m[1] as string });
    }
    return ' ';
  });
  for (const m of rest.matchAll(/[A-Za-z_:][\w:]*/g)) {
    const word = m[0];
    const next = rest.slice((m.index ?? 0) + word.length).trimStart();
    if (PROMQL_KEYWORDS.has(word)) continue;
    if (next.startsWith('(')) {
      if (!PROMQL_FUNCTIONS.has(word)) throw new Error(`unknown PromQL function ${word} in ${expr}`);
      continue;
    }
    metrics.push(word); // a bare selector without matchers
  }
  return { metrics, matchers, groupings };
}

export interface TraceqlRefs {
  readonly spanAttributes: string[];
  readonly resourceAttributes: string[];
  /** Values compared with the `name` intrinsic. */
  readonly spanNames: string[];
  /** Values compared with `kind` / `status`. */
  readonly kinds: string[];
  readonly statuses: string[];
}

const TRACEQL_INTRINSICS = new Set(['name', 'kind', 'status', 'duration', 'nil', 'true', 'false']);
const KINDS = new Set(['server', 'client', 'internal', 'producer', 'consumer', 'unspecified']);
const STATUSES = new Set(['error', 'ok', 'unset']);

export function traceqlRefs(query: string): TraceqlRefs {
  const trimmed = query.trim();
  if (!trimmed.startsWith('{') || !trimmed.endsWith('}')) throw new Error(`not a TraceQL spanset filter: ${query}`);
  const refs = {
    spanAttributes: [] as string[],
    resourceAttributes: [] as string[],
    spanNames: [] as string[],
    kinds: [] as string[],
    statuses: [] as string[],
  };
  for (const m of trimmed.matchAll(/(?<![\w.])name\s*(?:=|!=|=~)\s*"((?:[^"\\]|\\.)*)"/g))
    refs.spanNames.push(m[1] as string);
  const rest = trimmed.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  for (const m of rest.matchAll(/\b(span|resource)\.([A-Za-z_][\w.]*)/g)) {
    (m[1] === 'span' ? refs.spanAttributes : refs.resourceAttributes).push(m[2] as string);
  }
  if (/(^|[^\w.])\.[A-Za-z_]/.test(rest))
    throw new Error(`unscoped attribute in ${query}: scope it as span. or resource.`);
  for (const m of rest.matchAll(/(?<![\w.])kind\s*(?:=|!=)\s*(\w+)/g)) refs.kinds.push(m[1] as string);
  for (const m of rest.matchAll(/(?<![\w.])status\s*(?:=|!=)\s*(\w+)/g)) refs.statuses.push(m[1] as string);
  for (const kind of refs.kinds) if (!KINDS.has(kind)) throw new Error(`unknown span kind ${kind} in ${query}`);
  for (const status of refs.statuses)
    if (!STATUSES.has(status)) throw new Error(`unknown status ${status} in ${query}`);
  // Every other bare word must be an intrinsic, a number with a unit, or a kind/status value.
  const bare = rest.replace(/\b(span|resource)\.[\w.]+/g, ' ').match(/\b[A-Za-z_]\w*\b/g) ?? [];
  for (const word of bare) {
    if (!TRACEQL_INTRINSICS.has(word) && !KINDS.has(word) && !STATUSES.has(word) && !/^(ms|s|m|h|us|ns)$/.test(word)) {
      throw new Error(`unknown word ${word} in TraceQL ${query}`);
    }
  }
  return refs;
}
