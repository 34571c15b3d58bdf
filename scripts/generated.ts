// What every generator returns, and the two things `make generate` does with it: write the files,
// or (the staleness test) name each file on disk that differs from what its generator makes.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface GeneratedFile {
  /** Relative to the repository root. */
  readonly path: string;
  readonly content: string;
  /** The script that makes it, for the stale-file message. */
  readonly generator: string;
}

/** One line per file under `root` that is missing or differs from what its generator makes. */
export function findStale(root: string, files: readonly GeneratedFile[]): string[] {
  const stale: string[] = [];
  for (const file of files) {
    const at = path.join(root, file.path);
    if (!existsSync(at)) stale.push(`${file.path} is missing (made by ${file.generator}): run make generate`);
    else if (readFileSync(at, 'utf8') !== file.content)
      stale.push(`${file.path} is stale (made by ${file.generator}): run make generate`);
  }
  return stale;
}

/** Writes the files that changed; returns their paths. */
export function writeGenerated(root: string, files: readonly GeneratedFile[]): string[] {
  const written: string[] = [];
  for (const file of files) {
    const at = path.join(root, file.path);
    if (existsSync(at) && readFileSync(at, 'utf8') === file.content) continue;
    mkdirSync(path.dirname(at), { recursive: true });
    writeFileSync(at, file.content);
    written.push(file.path);
  }
  return written;
}
