// A minimal OTLP/HTTP receiver for tests: records every JSON export (path and parsed body) and
// answers 200, so exporters configured with OTEL_EXPORTER_OTLP_PROTOCOL=http/json can be checked.
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';

export interface Received {
  path: string;
  body: unknown;
}

export async function startOtlpReceiver(): Promise<{ url: string; received: Received[]; close(): Promise<void> }> {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ path: req.url ?? '', body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export type KeyValue = { key: string; value: Record<string, unknown> };
export const attr = (list: KeyValue[] | undefined, key: string): unknown => {
  const v = list?.find((kv) => kv.key === key)?.value;
  return v === undefined ? undefined : Object.values(v)[0];
};

/** Every span of every /v1/traces export, with its resource attributes. */
export function receivedSpans(
  received: readonly Received[],
): { name: string; attributes: KeyValue[]; links?: unknown[]; resource: KeyValue[] }[] {
  type Body = {
    resourceSpans?: {
      resource: { attributes: KeyValue[] };
      scopeSpans: { spans: { name: string; attributes: KeyValue[]; links?: unknown[] }[] }[];
    }[];
  };
  return received
    .filter((r) => r.path === '/v1/traces')
    .flatMap((r) => (r.body as Body).resourceSpans ?? [])
    .flatMap((rs) =>
      rs.scopeSpans.flatMap((ss) => ss.spans.map((span) => ({ ...span, resource: rs.resource.attributes }))),
    );
}
