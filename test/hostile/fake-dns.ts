// A small real DNS server over UDP for the DNS-starvation scenario (it runs inside a namespace on
// 127.0.0.1:53, named by a bind-mounted /etc/resolv.conf). It answers A queries from a table,
// NXDOMAIN for unknown names, and never answers names starting with "silent" (a DNS server that
// drops queries). A fake because no real recursive resolver runs here without the internet.
import dgram from 'node:dgram';

export interface FakeDns {
  /** Queries received, by name (lower case). */
  readonly received: Map<string, number>;
  close(): Promise<void>;
}

function readName(msg: Buffer, offset: number): { name: string; end: number } {
  const labels: string[] = [];
  let i = offset;
  while (i < msg.length && msg[i] !== 0) {
    const len = msg[i]!;
    labels.push(msg.subarray(i + 1, i + 1 + len).toString('latin1'));
    i += 1 + len;
  }
  return { name: labels.join('.').toLowerCase(), end: i + 1 };
}

export async function startFakeDns(answers: Record<string, string>, host = '127.0.0.1', port = 53): Promise<FakeDns> {
  const socket = dgram.createSocket('udp4');
  const received = new Map<string, number>();
  socket.on('message', (msg, rinfo) => {
    if (msg.length < 12) return;
    const { name, end } = readName(msg, 12);
    received.set(name, (received.get(name) ?? 0) + 1);
    if (name.startsWith('silent')) return;
    const qtype = msg.readUInt16BE(end);
    const question = msg.subarray(12, end + 4);
    const address = answers[name];
    const header = Buffer.alloc(12);
    msg.copy(header, 0, 0, 2); // id
    const found = address !== undefined;
    // QR=1, opcode 0, AA=1, RD copied, RA=1; RCODE 3 (NXDOMAIN) for unknown names.
    header.writeUInt16BE(0x8400 | (msg.readUInt16BE(2) & 0x0100) | 0x0080 | (found ? 0 : 3), 2);
    header.writeUInt16BE(1, 4); // QDCOUNT
    const withAnswer = found && qtype === 1;
    header.writeUInt16BE(withAnswer ? 1 : 0, 6); // ANCOUNT
    const parts = [header, question];
    if (withAnswer) {
      const rr = Buffer.alloc(16);
      rr.writeUInt16BE(0xc00c, 0); // pointer to the question's name
      rr.writeUInt16BE(1, 2); // A
      rr.writeUInt16BE(1, 4); // IN
      rr.writeUInt32BE(60, 6); // TTL
      rr.writeUInt16BE(4, 10);
      address.split('.').forEach((octet, i) => (rr[12 + i] = Number(octet)));
      parts.push(rr);
    }
    socket.send(Buffer.concat(parts), rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, host, () => resolve());
  });
  return {
    received,
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
}
