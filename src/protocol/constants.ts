// SOCKS4 wire constants (spec/SOCKS4.protocol.txt).

/** VN of every request: "VN is the SOCKS protocol version number and should be 4". */
export const SOCKS_VERSION = 4;

/** VN of every reply: "VN is the version of the reply code and should be 0". */
export const REPLY_VERSION = 0;

/** CD of a request. */
export const Command = {
  Connect: 1,
  Bind: 2,
} as const;
export type Command = (typeof Command)[keyof typeof Command];

/** CD of a reply. 92 and 93 are reserved for ident failures (RFC 1413), never reused. */
export const ReplyCode = {
  Granted: 90,
  Rejected: 91,
  IdentUnreachable: 92,
  IdentMismatch: 93,
} as const;
export type ReplyCode = (typeof ReplyCode)[keyof typeof ReplyCode];

/**
 * The spec sets no bound on USERID or the SOCKS4a name; we do, so a client cannot make us buffer
 * without end before the request is complete. 255 matches the DNS name limit (RFC 1035).
 */
export const MAX_USERID_BYTES = 255;
export const MAX_HOSTNAME_BYTES = 255;

/** Every reply is VN(1) CD(1) DSTPORT(2) DSTIP(4). */
export const REPLY_LENGTH = 8;
