// Running a container of a rendered pod template as a local process, the way the kubelet would
// start it: its env (downward API fields and Secret keys supplied by the caller), `$(VAR)`
// expansion in args and env, and a few flag values swapped for local addresses. What runs is then
// the chart's own command line, so a flag the CLI does not know fails the test.

export type EnvVar = {
  name: string;
  value?: string;
  valueFrom?: {
    fieldRef?: { fieldPath: string };
    secretKeyRef?: { name: string; key: string };
  };
};
export type Container = { name: string; args?: string[]; command?: string[]; env?: EnvVar[] };

export type LocalPodInputs = {
  /** Downward API values by fieldPath, e.g. {'metadata.namespace': 'ns'}. */
  fields: Record<string, string>;
  /** Secret values by `<secret>/<key>`. */
  secrets?: Record<string, string>;
};

/** Kubernetes' $(VAR) expansion: defined names are replaced, `$$` escapes, others stay as is. */
export function expandKubeVars(text: string, env: Record<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string | undefined) => {
    if (name === undefined) return '$';
    return env[name] ?? whole;
  });
}

/** The container's environment as the kubelet would build it (in order; later may use earlier). */
export function containerEnv(container: Container, inputs: LocalPodInputs): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of container.env ?? []) {
    if (entry.value !== undefined) env[entry.name] = expandKubeVars(entry.value, env);
    else if (entry.valueFrom?.fieldRef !== undefined) {
      const value = inputs.fields[entry.valueFrom.fieldRef.fieldPath];
      if (value === undefined)
        throw new Error(`${entry.name}: no value for field ${entry.valueFrom.fieldRef.fieldPath}`);
      env[entry.name] = value;
    } else if (entry.valueFrom?.secretKeyRef !== undefined) {
      const ref = `${entry.valueFrom.secretKeyRef.name}/${entry.valueFrom.secretKeyRef.key}`;
      const value = inputs.secrets?.[ref];
      if (value === undefined) throw new Error(`${entry.name}: no value for secret key ${ref}`);
      env[entry.name] = value;
    } else {
      env[entry.name] = '';
    }
  }
  return env;
}

/** The container's args, expanded, with the value after each flag in `replace` swapped. */
export function containerArgs(
  container: Container,
  env: Record<string, string>,
  replace: Record<string, string> = {},
): string[] {
  const args = (container.args ?? []).map((arg) => expandKubeVars(arg, env));
  for (const [flag, value] of Object.entries(replace)) {
    const at = args.indexOf(flag);
    if (at < 0 || at + 1 >= args.length)
      throw new Error(`${container.name}: the chart passes no ${flag} (args: ${args.join(' ')})`);
    args[at + 1] = value;
  }
  return args;
}
