/**
 * NATS in a test cluster, as the official NATS Helm chart (nats-io/k8s, `nats/nats`) would deploy
 * it from the values README's install section writes: a StatefulSet of servers with routes between
 * them (a headless Service), a client Service `nats` on 4222, monitoring on 8222, and the values'
 * `config.merge` rendered into `nats.conf` (the chart's `<< $VAR >>` becomes the bare variable,
 * which nats-server reads from the container's environment, `container.env`). The chart itself
 * comes from the internet, which tests cannot reach; these manifests carry the same configuration.
 *
 * @module
 */
import { parse } from "yaml";
import { type NatsConfig, toNatsConf } from "../nats_server.ts";

/** The parts of the NATS chart's values that the stand-in reads. */
export interface NatsChartValues {
  /** `config.merge`: merged into nats.conf. */
  readonly merge: NatsConfig;
  /** `container.env`: the server container's environment (`value` or `valueFrom`). */
  readonly env: Readonly<Record<string, unknown>>;
  /** `config.cluster.replicas` (3 unless the values say otherwise). */
  readonly replicas: number;
}

/** Options of {@linkcode natsManifests}. */
export interface NatsManifestOptions {
  /** Release name (the chart names its objects after it). @default {"nats"} */
  readonly name?: string;
  readonly namespace: string;
  readonly values: NatsChartValues;
  /** The nats-server image. @default {"localhost/nats-server:local"} */
  readonly image?: string;
}

/** Read the values the stand-in understands from a NATS chart values file's text. */
export function readNatsChartValues(text: string): NatsChartValues {
  const values = (parse(text) ?? {}) as Record<string, unknown>;
  const config = (values.config ?? {}) as Record<string, unknown>;
  const cluster = (config.cluster ?? {}) as Record<string, unknown>;
  const container = (values.container ?? {}) as Record<string, unknown>;
  return {
    merge: (config.merge ?? {}) as NatsConfig,
    env: (container.env ?? {}) as Record<string, unknown>,
    replicas: typeof cluster.replicas === "number" ? cluster.replicas : 3,
  };
}

const RAW = "__nats_raw__";

/** The chart's `<< $VAR >>` marks a bare (unquoted) value in nats.conf. */
function markRaw(value: unknown): unknown {
  if (typeof value === "string") {
    const m = value.match(/^<<\s*(.*?)\s*>>$/);
    return m ? `${RAW}${m[1]}` : value;
  }
  if (Array.isArray(value)) return value.map(markRaw);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, markRaw(v)]));
  }
  return value;
}

/** nats.conf of one server of the StatefulSet. */
export function natsConf(name: string, namespace: string, values: NatsChartValues): string {
  const routes = Array.from(
    { length: values.replicas },
    (_, i) => `nats://${name}-${i}.${name}-headless.${namespace}.svc.cluster.local:6222`,
  );
  const base: NatsConfig = {
    port: 4222,
    http_port: 8222,
    pid_file: "/tmp/nats.pid",
    lame_duck_duration: "30s",
    lame_duck_grace_period: "10s",
    ...(values.replicas > 1 ? { cluster: { name, port: 6222, routes, no_advertise: true } } : {}),
  };
  const merged = { ...base, ...(markRaw(values.merge) as NatsConfig) };
  const text = toNatsConf(merged).replace(new RegExp(`"${RAW}([^"]*)"`, "g"), "$1");
  return `server_name: $SERVER_NAME\n${text}\n`;
}

/** The Kubernetes objects (one YAML text) of a NATS release. */
export function natsManifests(options: NatsManifestOptions): string {
  const name = options.name ?? "nats";
  const ns = options.namespace;
  const { values } = options;
  const env = [
    { name: "SERVER_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
    ...Object.entries(values.env).map(([k, v]) =>
      typeof v === "object" && v !== null ? { name: k, ...v } : { name: k, value: String(v) }
    ),
  ];
  const labels = { "app.kubernetes.io/name": "nats", "app.kubernetes.io/instance": name };
  const objects = [
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: `${name}-config`, namespace: ns, labels },
      data: { "nats.conf": natsConf(name, ns, values) },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: `${name}-headless`, namespace: ns, labels },
      spec: {
        clusterIP: "None",
        publishNotReadyAddresses: true,
        selector: labels,
        ports: [
          { name: "nats", port: 4222 },
          { name: "cluster", port: 6222 },
          { name: "monitor", port: 8222 },
        ],
      },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name, namespace: ns, labels },
      spec: { selector: labels, ports: [{ name: "nats", port: 4222, targetPort: 4222 }] },
    },
    {
      apiVersion: "apps/v1",
      kind: "StatefulSet",
      metadata: { name, namespace: ns, labels },
      spec: {
        serviceName: `${name}-headless`,
        replicas: values.replicas,
        podManagementPolicy: "Parallel",
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            enableServiceLinks: false,
            terminationGracePeriodSeconds: 60,
            containers: [{
              name: "nats",
              image: options.image ?? "localhost/nats-server:local",
              imagePullPolicy: "Never",
              args: ["--config", "/etc/nats-config/nats.conf"],
              env,
              ports: [
                { name: "nats", containerPort: 4222 },
                { name: "cluster", containerPort: 6222 },
                { name: "monitor", containerPort: 8222 },
              ],
              readinessProbe: {
                httpGet: { path: "/healthz", port: 8222 },
                periodSeconds: 2,
                failureThreshold: 3,
              },
              lifecycle: {
                preStop: { exec: { command: ["/nats-server", "-sl=ldm=/tmp/nats.pid"] } },
              },
              volumeMounts: [{ name: "config", mountPath: "/etc/nats-config" }],
            }],
            volumes: [{ name: "config", configMap: { name: `${name}-config` } }],
          },
        },
      },
    },
  ];
  return objects.map((o) => JSON.stringify(o)).join("\n---\n");
}

/**
 * The stand-in for `helm install <release> nats/nats -n <namespace> -f <values.yaml> …` (README's
 * step 2): prints the manifests the test applies in place of the chart from the internet.
 *
 *     deno run -A tests/support/cluster/nats.ts install nats nats/nats -n nats -f nats-values.yaml
 */
async function main(args: string[]): Promise<void> {
  const [command, name, chart] = args;
  if (command !== "install" || !name || chart !== "nats/nats") {
    throw new Error(
      `the NATS chart stand-in takes "install <release> nats/nats …", not: ${args.join(" ")}`,
    );
  }
  let namespace = "default";
  const values: string[] = [];
  for (let i = 3; i < args.length; i++) {
    const a = args[i]!;
    if (a === "-n" || a === "--namespace") namespace = args[++i]!;
    else if (a === "-f" || a === "--values") values.push(args[++i]!);
    else if (a === "--version") i++;
    else throw new Error(`the NATS chart stand-in does not know ${a}`);
  }
  if (values.length !== 1) throw new Error("the NATS chart stand-in needs one -f values file");
  const text = await Deno.readTextFile(values[0]!);
  const bytes = new TextEncoder().encode(
    natsManifests({ name, namespace, values: readNatsChartValues(text) }),
  );
  for (let off = 0; off < bytes.length;) off += await Deno.stdout.write(bytes.subarray(off));
}

if (import.meta.main) await main(Deno.args);
