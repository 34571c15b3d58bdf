// Bandwidth buckets. Capacity is one second's worth of bytes, so short bursts (a TLS handshake,
// a page of HTML) pass undelayed while the long-run rate holds. Taking always succeeds and may
// leave the bucket in debt; the debt is the delay the relay must wait before sending. That keeps
// the per-chunk path to a few arithmetic operations and never splits a chunk. Buckets are local
// to a pod even in fleet mode: a Redis round trip per chunk would cost more than relaying it, so
// Redis stays off the per-chunk path (docs/architecture.md, Limits).

import type { BandwidthGate } from './types.ts';

export interface TokenBucket {
  bytesPerSecond: number;
  capacity: number;
  /** May go negative: bytes already promised to a caller who is waiting. */
  tokens: number;
  /** Time (ms) up to which tokens have been credited. */
  updatedAt: number;
}

export function createTokenBucket(bytesPerSecond: number, now: number): TokenBucket {
  return { bytesPerSecond, capacity: bytesPerSecond, tokens: bytesPerSecond, updatedAt: now };
}

function refillBucket(bucket: TokenBucket, now: number): void {
  // A clock that steps back must not mint tokens; credit nothing until it passes updatedAt again.
  if (now <= bucket.updatedAt) return;
  const credited = ((now - bucket.updatedAt) * bucket.bytesPerSecond) / 1000;
  bucket.tokens = Math.min(bucket.capacity, bucket.tokens + credited);
  bucket.updatedAt = now;
}

/** Accounts `bytes` and returns the ms to wait before sending them (0 = now). */
export function takeFromBucket(bucket: TokenBucket, bytes: number, now: number): number {
  refillBucket(bucket, now);
  bucket.tokens -= bytes;
  if (bucket.tokens >= 0) return 0;
  return Math.ceil((-bucket.tokens * 1000) / bucket.bytesPerSecond);
}

/** A shared bucket follows the latest rule (policy reloads); credit the old rate up to now first. */
export function updateBucketRate(bucket: TokenBucket, bytesPerSecond: number, now: number): void {
  if (bucket.bytesPerSecond === bytesPerSecond) return;
  refillBucket(bucket, now);
  bucket.bytesPerSecond = bytesPerSecond;
  bucket.capacity = bytesPerSecond;
  bucket.tokens = Math.min(bucket.tokens, bucket.capacity);
}

/** A full bucket is indistinguishable from a new one, so it may be forgotten. */
export function isBucketFull(bucket: TokenBucket, now: number): boolean {
  const elapsed = Math.max(0, now - bucket.updatedAt);
  return bucket.tokens + (elapsed * bucket.bytesPerSecond) / 1000 >= bucket.capacity;
}

export function createBandwidthGate(bucket: TokenBucket, clock: () => number): BandwidthGate {
  return {
    take(bytes: number, now: number = clock()): number {
      return takeFromBucket(bucket, bytes, now);
    },
  };
}
