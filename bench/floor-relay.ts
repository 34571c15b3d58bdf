// The Node floor: the least a SOCKS4 CONNECT relay on Node's net module can do per session —
// accept, read the request up to its USERID's NUL, connect, reply 90, pipe both ways (a FIN is
// passed on), close. No policy, limits, logs, metrics, timers or error handling beyond not
// crashing. Its CPU per session is what Node itself costs; socks4-fleet's goals are ratios to it
// (bench/cpu-per-session.ts). Not a product: never run it anywhere but the benchmark.
//
//   scripts/node bench/floor-relay.ts PORT      listens on 127.0.0.1:PORT, prints "listening"
import net from 'node:net';

const GRANTED = Buffer.from([0, 90, 0, 0, 0, 0, 0, 0]);

const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
  let head: Buffer = Buffer.alloc(0);
  client.on('error', () => client.destroy());
  const onData = (chunk: Buffer): void => {
    head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
    const nul = head.indexOf(0, 8);
    if (head.length < 9 || nul < 0) return;
    client.removeListener('data', onData);
    client.pause();
    const port = head.readUInt16BE(2);
    const host = `${head[4]}.${head[5]}.${head[6]}.${head[7]}`;
    const rest = head.subarray(nul + 1);
    const upstream = net.connect({ host, port, allowHalfOpen: true, noDelay: true });
    upstream.on('error', () => {
      upstream.destroy();
      client.destroy();
    });
    upstream.once('connect', () => {
      client.write(GRANTED);
      if (rest.length > 0) upstream.write(rest);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  };
  client.on('data', onData);
});

server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => process.stdout.write('listening\n'));
process.once('SIGTERM', () => process.exit(0));
