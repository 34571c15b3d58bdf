// Compile-time proof that the hand-written policy types (types.ts) are the schema (schema.ts):
// the TypeScript type each schema field describes is derived below, and `make typecheck` fails
// when a field, its optionality or its values differ from the interface the code uses. The
// interfaces stay hand-written for their doc comments; they cannot drift. Nothing here runs.

import type { CLUSTER_POLICY_SPEC } from './schema.ts';
import type { PolicyRule, PolicySpec, RuleDestination, RuleLimits, RuleSource } from './types.ts';

type RequiredKeys<S> = S extends { readonly required: readonly (infer R)[] } ? R : never;
type Flatten<T> = { [K in keyof T]: T[K] };

/** The value a schema field describes, as the code reads it (readonly, like the interfaces). */
export type SchemaType<S> = S extends { readonly enum: readonly (infer E)[] }
  ? E
  : S extends { readonly type: 'string' }
    ? string
    : S extends { readonly type: 'integer' | 'number' }
      ? number
      : S extends { readonly type: 'boolean' }
        ? boolean
        : S extends { readonly type: 'array'; readonly items: infer I }
          ? readonly SchemaType<I>[]
          : S extends { readonly type: 'object'; readonly properties: infer P }
            ? Flatten<
                { readonly [K in keyof P & RequiredKeys<S>]: SchemaType<P[K]> } & {
                  readonly [K in Exclude<keyof P, RequiredKeys<S>>]?: SchemaType<P[K]>;
                }
              >
            : never;

/** True only when A and B are the same type, optional and readonly modifiers included. */
export type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
/** Deeply, through nested interfaces (which `Same` would compare by name). */
export type Deep<T> = T extends string | number | boolean
  ? T
  : T extends readonly (infer E)[]
    ? readonly Deep<E>[]
    : { [K in keyof T]: Deep<T[K]> };
export type Assert<T extends true> = T;

type Spec = SchemaType<typeof CLUSTER_POLICY_SPEC>;
type Rule = Spec['rules'][number];

// A failing line names the interface that no longer matches the schema.
export type SchemaChecks = [
  Assert<Same<Deep<RuleSource>, Deep<NonNullable<Rule['from']>>>>,
  Assert<Same<Deep<RuleDestination>, Deep<NonNullable<Rule['to']>>>>,
  Assert<Same<Deep<RuleLimits>, Deep<NonNullable<Rule['limits']>>>>,
  Assert<Same<Deep<PolicyRule>, Deep<Rule>>>,
  Assert<Same<Deep<PolicySpec>, Deep<Spec>>>,
];
