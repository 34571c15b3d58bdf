// `helm test`: one SOCKS4 CONNECT through the proxy Service, run with the chart's own image.
// Passes when the fleet answers with a well-formed reply (VN 0, CD 90-93), or only with 90
// (granted) when SOCKS4_EXPECT_GRANTED is "true". CommonJS so `node -e` runs it as is.
'use strict';
const net = require('node:net');

const REPLIES = { 90: 'granted', 91: 'rejected or failed', 92: 'identd unreachable', 93: 'ident mismatch' };
const proxyHost = process.env.SOCKS4_PROXY_HOST;
const proxyPort = Number(process.env.SOCKS4_PROXY_PORT);
const destination = process.env.SOCKS4_DESTINATION || '';
const expectGranted = process.env.SOCKS4_EXPECT_GRANTED === 'true';
const userId = process.env.SOCKS4_USERID || 'helm-test';
const timeoutMs = Number(process.env.SOCKS4_TIMEOUT_MS || 15000);

const split = destination.lastIndexOf(':');
const destHost = destination.slice(0, split);
const destPort = Number(destination.slice(split + 1));
if (split < 1 || !(destPort >= 1 && destPort <= 65535)) {
  console.error(`SOCKS4_DESTINATION "${destination}" is not host:port`);
  process.exit(2);
}

// SOCKS4: VN=4, CD=1 (CONNECT), DSTPORT, DSTIP, USERID, NUL. SOCKS4a: DSTIP 0.0.0.1 and the
// host name, NUL-terminated, after the USERID for the proxy to resolve.
const ipv4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(destHost);
const header = Buffer.alloc(8);
header[0] = 4;
header[1] = 1;
header.writeUInt16BE(destPort, 2);
const ipBytes = ipv4 ? ipv4.slice(1).map(Number) : [0, 0, 0, 1];
ipBytes.forEach((byte, i) => { header[4 + i] = byte; });
const parts = [header, Buffer.from(userId), Buffer.from([0])];
if (!ipv4) parts.push(Buffer.from(destHost), Buffer.from([0]));

const socket = net.connect({ host: proxyHost, port: proxyPort });
let received = Buffer.alloc(0);
const finish = (code, message) => {
  (code === 0 ? console.log : console.error)(message);
  process.exitCode = code;
  socket.destroy();
};
socket.setTimeout(timeoutMs, () => finish(1, `no SOCKS4 reply from ${proxyHost}:${proxyPort} within ${timeoutMs} ms`));
socket.on('connect', () => socket.write(Buffer.concat(parts)));
socket.on('error', (err) => finish(1, `${proxyHost}:${proxyPort}: ${err.message}`));
socket.on('data', (chunk) => {
  received = Buffer.concat([received, chunk]);
  if (received.length < 8) return;
  const [vn, cd] = received;
  const what = `SOCKS4 reply ${cd} (${REPLIES[cd] || 'unknown'}) from ${proxyHost}:${proxyPort} for ${destination}`;
  if (vn !== 0 || !(cd in REPLIES)) finish(1, `malformed reply ${received.subarray(0, 8).toString('hex')}`);
  else if (expectGranted && cd !== 90) finish(1, `${what}; expected 90 (granted)`);
  else finish(0, what);
});
socket.on('end', () => {
  if (received.length < 8) finish(1, `${proxyHost}:${proxyPort} closed after ${received.length} reply bytes`);
});
