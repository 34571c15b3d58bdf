// Writes charts/socks4-fleet/values.schema.json from values.yaml, where every value is declared,
// documented and, when its value alone does not say enough, annotated (as external-dns does with
// helm-values-schema-json):
//
//   # @schema {minimum: 1, required: true}
//   # -- Most open sessions per pod (`--max-sessions`).
//   maxSessions: 10000
//
// The annotation is a YAML flow mapping of JSON Schema keywords (several `# @schema` lines are
// joined); `$ref: port` is short for `$ref: "#/definitions/port"`, and `required: true` lists the
// key in its parent's `required`. Without one the type comes from the value (string, boolean,
// integer, number); `enum` keeps that type when every entry has it; `$ref`, `type`, `oneOf`,
// `anyOf` or `const` replace it. A map without an annotation is a strict object
// (`additionalProperties: false`) of its keys; a map with one is described by the annotation
// alone (a Kubernetes type, a typed map). The comment above a key, `# --` and `@schema` lines
// aside, becomes its description. Shared types live in values.schema.definitions.yaml beside it.
// `make generate` runs this (scripts/generate.ts).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { isMap, isScalar, parse, parseDocument, type Pair, type YAMLMap } from 'yaml';
import type { GeneratedFile } from './generated.ts';

export const CHART = 'charts/socks4-fleet';
export const VALUES_SCHEMA_PATH = `${CHART}/values.schema.json`;
const VALUES = `${CHART}/values.yaml`;
const DEFINITIONS = `${CHART}/values.schema.definitions.yaml`;
const GENERATOR = 'scripts/gen-values-schema.ts';

type Schema = Record<string, unknown>;

/** Keywords that say what a value is: with one of them the annotation replaces the value's type. */
const TYPE_KEYWORDS = ['$ref', 'type', 'oneOf', 'anyOf', 'const'];

/** `port` → `#/definitions/port`, at any depth. */
function expandRefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(expandRefs);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [
      k,
      k === '$ref' && typeof v === 'string' && !v.includes('#') ? `#/definitions/${v}` : expandRefs(v),
    ]),
  );
}

function typeOf(value: unknown): string | null {
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return null;
}

/**
 * The comment right above a key (its last paragraph: the file's own header sits above the first
 * key); the first key of a nested map carries it on the map itself.
 */
function commentOf(pair: Pair, map: YAMLMap): string {
  const onKey = isScalar(pair.key) ? pair.key.commentBefore : null;
  const comment = onKey || (map.items[0] === pair ? (map.commentBefore ?? '') : '');
  return comment.split(/\n\s*\n/).pop() ?? '';
}

/** Splits a comment into its `@schema` annotation and its description. */
export function readComment(comment: string, at: string): { annotation: Schema | null; description: string } {
  const annotation: string[] = [];
  const text: string[] = [];
  for (const raw of comment.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('@schema')) annotation.push(line.slice('@schema'.length));
    else text.push(line.replace(/^--\s?/, ''));
  }
  const description = text.join(' ').replace(/\s+/g, ' ').trim();
  if (annotation.length === 0) return { annotation: null, description };
  let parsed: unknown;
  try {
    parsed = parse(annotation.join(' '));
  } catch (error) {
    throw new Error(
      `${VALUES}: ${at}: the @schema annotation is not a YAML mapping (${(error as Error).message.split('\n')[0]})`,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new Error(`${VALUES}: ${at}: the @schema annotation is not a YAML mapping`);
  return { annotation: expandRefs(parsed) as Schema, description };
}

/** The schema of one key: its annotation, its value's type, or (an unannotated map) its keys. */
function schemaOf(pair: Pair, map: YAMLMap, at: string): { schema: Schema; required: boolean } {
  const { annotation, description } = readComment(commentOf(pair, map), at);
  const { required = false, ...given } = annotation ?? {};
  if (typeof required !== 'boolean') throw new Error(`${VALUES}: ${at}: @schema required must be true or false`);
  let schema: Schema;
  // An empty map says nothing about its entries: it needs an annotation like any other value.
  if (annotation === null && isMap(pair.value) && pair.value.items.length > 0) {
    schema = objectSchema(pair.value, at);
  } else {
    const value = isScalar(pair.value) ? pair.value.value : undefined;
    const type = typeOf(value);
    const enumKeepsType = Array.isArray(given.enum) && given.enum.every((v) => typeOf(v) === type);
    const typed = TYPE_KEYWORDS.some((k) => k in given) || (given.enum !== undefined && !enumKeepsType);
    if (!typed && type === null) {
      throw new Error(
        `${VALUES}: ${at}: its value does not say its type; add a # @schema annotation (e.g. {type: integer} or {$ref: stringMap})`,
      );
    }
    schema = typed ? given : { type, ...given };
  }
  if (description !== '' && schema.description === undefined) schema.description = description;
  return { schema, required };
}

function objectSchema(map: YAMLMap, path: string): Schema {
  const properties: Record<string, Schema> = {};
  const required: string[] = [];
  for (const pair of map.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
    const at = path === '' ? key : `${path}.${key}`;
    const child = schemaOf(pair, map, at);
    properties[key] = child.schema;
    if (child.required) required.push(key);
  }
  return { type: 'object', additionalProperties: false, properties, ...(required.length > 0 ? { required } : {}) };
}

/** values.schema.json as its generator makes it from the files under `root`. */
export function renderValuesSchema(root: string): GeneratedFile {
  const values = parseDocument(readFileSync(path.join(root, VALUES), 'utf8'));
  if (values.errors.length > 0) throw new Error(`${VALUES}: ${values.errors[0]?.message}`);
  if (!isMap(values.contents)) throw new Error(`${VALUES}: the document is not a map`);
  const frame = expandRefs(parse(readFileSync(path.join(root, DEFINITIONS), 'utf8'))) as Schema;
  const { $schema, title, ...rest } = frame;
  const schema = {
    $schema,
    $comment: `Generated by ${GENERATOR} from values.yaml (its # @schema annotations) and values.schema.definitions.yaml: edit those, then run make generate.`,
    title,
    ...objectSchema(values.contents, ''),
    ...rest,
  };
  return { path: VALUES_SCHEMA_PATH, content: `${JSON.stringify(schema, null, 2)}\n`, generator: GENERATOR };
}
