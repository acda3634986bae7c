/**
 * Installing the chart as written: what `helm install` refuses and how it says so, agreement with
 * the service's own start-up checks (lib/config/config.ts) setting by setting, `helm lint` and the
 * chart-testing value sets, the NetworkPolicy's apiserver egress, Secret mounts that see rotations,
 * the PodDisruptionBudget, and the `helm test` Pod — whose script runs here for real against
 * nats-server and the service.
 */
import assert from "node:assert/strict";
import { createAccount, createCurve, createUser } from "@nats-io/nkeys";
import { parse as parseYaml } from "yaml";
import { ConfigError, loadConfig } from "../../lib/config/config.ts";
import {
  CHART_DIR,
  deploymentEnv,
  field,
  findOne,
  HelmError,
  KUBE_VERSION,
  type Manifest,
  materializePod,
  renderChart,
  type RenderOptions,
  runHelm,
} from "../support/chart.ts";
import { tolerateClientResets } from "../support/nats_server.ts";
import { Stack } from "../support/stack.ts";

tolerateClientResets();

const decoder = new TextDecoder();
const FULL = "r-nats-k8s-oidc-callout";
const ACCOUNT_SEED = decoder.decode(createAccount().getSeed());
const CURVE_SEED = decoder.decode(createCurve().getSeed());
const USER_SEED = decoder.decode(createUser().getSeed());
/** Values that install: a config-mode account and a created signing key (a real seed, made now). */
const BASE = {
  nats: {
    url: "nats://nats:4222",
    account: "APP",
    signingKey: { create: true, content: ACCOUNT_SEED },
  },
};

type Values = Record<string, unknown>;

function isPlain(value: unknown): value is Values {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `over` merged into `base`, as a later `-f` file merges into an earlier one. */
function merge(base: Values, over: Values): Values {
  const out: Values = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const prev = out[key];
    out[key] = isPlain(prev) && isPlain(value) ? merge(prev, value) : value;
  }
  return out;
}

/** Render expecting helm to refuse; return its error output. */
async function helmFailure(values: object, options: RenderOptions = {}): Promise<string> {
  try {
    await renderChart(values, options);
  } catch (err) {
    if (err instanceof HelmError) return err.stderr;
    throw err;
  }
  throw new assert.AssertionError({ message: "helm template succeeded; expected a refusal" });
}

/** The service's verdict on `env`: undefined when it starts, else its one-message problem list. */
function serviceVerdict(env: Record<string, string | undefined>): string | undefined {
  try {
    loadConfig(env);
    return undefined;
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
}

function isHook(doc: Manifest): boolean {
  return field(doc, "metadata", "annotations", "helm.sh/hook") !== undefined;
}

function pod(docs: Manifest[]): Manifest {
  return field(findOne(docs, "Deployment", FULL), "spec", "template", "spec") as Manifest;
}

function container(docs: Manifest[]): Manifest {
  return (field(pod(docs), "containers") as Manifest[])[0] as Manifest;
}

Deno.test("the reference's install commands without a signing key fail with one sentence naming it and how to make it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chart-install-" });
  try {
    const creds = `${dir}/user.creds`;
    await Deno.writeTextFile(
      creds,
      "-----BEGIN NATS USER JWT-----\n…\n------END NATS USER JWT------\n",
    );
    const base = ["template", "r", CHART_DIR, "--kube-version", KUBE_VERSION];
    const commands = [
      ["--set", "nats.account=APP", "--set", "nats.credentials.create=true"],
      ["--set", "nats.account=APP", "--set", "nats.credentials.existingSecret=callout-creds"],
      ["--set", "nats.account=APP", "--set", "nats.userCredentials.create=true"],
    ];
    for (const args of commands) {
      const all = [...base, ...args];
      if (args.includes("nats.credentials.create=true")) {
        all.push("--set-file", `nats.credentials.content=${creds}`);
      }
      if (args.includes("nats.userCredentials.create=true")) {
        all.push("--set-file", `nats.userCredentials.content=${creds}`);
      }
      const err = await runHelm(all).then(() => undefined, (e: unknown) => e);
      assert(err instanceof HelmError, `helm ${all.join(" ")} succeeded`);
      assert.doesNotMatch(err.stderr, /allOf|minLength/);
      assert.match(err.stderr, /1 problem\(s\) with the values/);
      assert.match(err.stderr, /nats\.signingKey is required: the account seed \(SA…\)/);
      assert.match(err.stderr, /nk -gen account > signing\.key/);
      assert.match(err.stderr, /nsc/);
      assert.match(err.stderr, /--set nats\.signingKey\.existingSecret=/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("with nothing set, one message names every required value", async () => {
  const text = await helmFailure({});
  assert.match(text, /2 problem\(s\) with the values/);
  assert.match(text, /- nats\.account is required/);
  assert.match(text, /- nats\.signingKey is required/);
  assert.doesNotMatch(text, /allOf|minLength/);
});

Deno.test("create: true without content names the value and the --set-file that fills it, for every Secret", async () => {
  for (const block of ["userCredentials", "credentials", "signingKey", "xkey"]) {
    const text = await helmFailure(
      merge(BASE, { nats: { [block]: { create: true, content: "" } } }),
    );
    assert.match(text, new RegExp(`nats\\.${block}\\.create=true needs`), block);
    assert.match(text, new RegExp(`--set-file nats\\.${block}\\.content=`), block);
    assert.doesNotMatch(text, /allOf|minLength/);
  }
});

Deno.test("a seed of the wrong kind is refused without being echoed", async () => {
  const wrongSigning = await helmFailure(
    merge(BASE, { nats: { signingKey: { content: USER_SEED } } }),
  );
  assert.match(wrongSigning, /nats\.signingKey\.content holds no account seed/);
  assert.doesNotMatch(wrongSigning, new RegExp(USER_SEED));
  const wrongXkey = await helmFailure(
    merge(BASE, { nats: { xkey: { create: true, content: ACCOUNT_SEED } } }),
  );
  assert.match(wrongXkey, /nats\.xkey\.content holds no curve seed/);
  assert.doesNotMatch(wrongXkey, new RegExp(ACCOUNT_SEED));
  // The creds-file form of a seed is accepted, as the service accepts it.
  const credsStyle =
    `-----BEGIN USER NKEY SEED-----\n${ACCOUNT_SEED}\n------END USER NKEY SEED------\n`;
  await renderChart(merge(BASE, { nats: { signingKey: { content: credsStyle } } }));
});

Deno.test("the deploy guide's nats.tls.{enabled,caFile,certFile,keyFile} fail naming the keys to use", async () => {
  const cases: [Values, RegExp][] = [
    [
      { enabled: true },
      /nats\.tls\.enabled is not a key of this chart: .*nats\.tls\.ca\.existingSecret/,
    ],
    [
      { caFile: "/etc/ca.crt" },
      /nats\.tls\.caFile is not a key of this chart: .*nats\.tls\.ca\.existingSecret=/,
    ],
    [{ certFile: "/c" }, /nats\.tls\.certFile\/keyFile .*nats\.tls\.client\.existingSecret=/],
    [{ keyFile: "/k" }, /nats\.tls\.certFile\/keyFile .*nats\.tls\.client\.existingSecret=/],
  ];
  for (const [tls, pattern] of cases) {
    const text = await helmFailure(merge(BASE, { nats: { tls } }));
    assert.match(text, pattern);
    assert.doesNotMatch(text, /additional properties/);
  }
  const all = await helmFailure(
    merge(BASE, { nats: { tls: { enabled: true, caFile: "/a", certFile: "/b", keyFile: "/c" } } }),
  );
  assert.match(all, /3 problem\(s\) with the values/);
});

/** A setting and how it reaches the service: chart values, and the env var the service reads. */
interface Case {
  name: string;
  values: Values;
  env: Record<string, string | undefined>;
  /** The chart's message must name this value. */
  names: RegExp;
}

Deno.test("every setting the service refuses at start is refused at install, naming the value", async () => {
  const root = await Deno.makeTempDir({ prefix: "chart-pod-" });
  try {
    const userSeedFile = `${root}/user.seed`;
    await Deno.writeTextFile(userSeedFile, USER_SEED);
    const accountSeedFile = `${root}/account.seed`;
    await Deno.writeTextFile(accountSeedFile, ACCOUNT_SEED);
    const good = await materializePod(await renderChart(BASE), { root });
    assert.equal(serviceVerdict(good), undefined, "the base values must start the service");

    const cases: Case[] = [
      {
        name: "ws:// URL",
        values: { nats: { url: "ws://nats:4222" } },
        env: { NATS_URL: "ws://nats:4222" },
        names: /nats\.url: entry 1 has the scheme "ws"/,
      },
      {
        name: "empty URL entry",
        values: { nats: { url: "nats://a:4222,,nats://b:4222" } },
        env: { NATS_URL: "nats://a:4222,,nats://b:4222" },
        names: /nats\.url: entry 2 is empty/,
      },
      {
        name: "URL without a host",
        values: { nats: { url: "nats://:4222" } },
        env: { NATS_URL: "nats://:4222" },
        names: /nats\.url: entry 1 has no host/,
      },
      {
        name: "URL with whitespace",
        values: { nats: { url: "nats://na ts:4222" } },
        env: { NATS_URL: "nats://na ts:4222" },
        names: /nats\.url: entry 1 contains whitespace/,
      },
      {
        name: "secretEnv URL with a wss scheme",
        values: { secretEnv: { NATS_URL: "wss://callout:s3cretpw@nats:443" } },
        env: { NATS_URL: "wss://callout:s3cretpw@nats:443" },
        names: /secretEnv\.NATS_URL: entry 1 has the scheme "wss"/,
      },
      {
        name: "token with user credentials",
        values: { nats: { token: "t0ken", userCredentials: { existingSecret: "creds" } } },
        env: { NATS_TOKEN: "t0ken", NATS_USER_CREDS_FILE: "/etc/nats/user.creds" },
        names: /nats\.token and nats\.userCredentials are both set/,
      },
      {
        name: "token with the older credentials key",
        values: { nats: { token: "t0ken", credentials: { existingSecret: "creds" } } },
        env: { NATS_TOKEN: "t0ken", NATS_USER_CREDS_FILE: "/etc/nats/user.creds" },
        names: /nats\.token and nats\.credentials are both set/,
      },
      {
        name: "unknown log level",
        values: { logLevel: "verbose" },
        env: { LOG_LEVEL: "verbose" },
        names: /logLevel "verbose"/,
      },
      {
        name: "user JWT TTL below 10s",
        values: { config: { userJwtTtl: "9s" } },
        env: { NATS_USER_JWT_TTL: "9s" },
        names: /config\.userJwtTtl "9s" is outside 10s\.\.24h/,
      },
      {
        name: "user JWT TTL above 24h",
        values: { config: { userJwtTtl: "24h0m1s" } },
        env: { NATS_USER_JWT_TTL: "24h0m1s" },
        names: /config\.userJwtTtl "24h0m1s" is outside/,
      },
      {
        name: "relist interval below 10s",
        values: { config: { cacheCleanupInterval: "9500ms" } },
        env: { CACHE_CLEANUP_INTERVAL: "9500ms" },
        names: /config\.cacheCleanupInterval "9500ms" is below the minimum of 10s/,
      },
      {
        name: "malformed duration",
        values: { config: { userJwtTtl: "5 minutes" } },
        env: { NATS_USER_JWT_TTL: "5 minutes" },
        names: /\/config\/userJwtTtl/,
      },
      {
        name: "no account",
        values: { nats: { account: "" } },
        env: { NATS_ACCOUNT: "" },
        names: /nats\.account is required/,
      },
      {
        name: "account with whitespace",
        values: { nats: { account: "MY APP" } },
        env: { NATS_ACCOUNT: "MY APP" },
        names: /nats\.account contains whitespace/,
      },
      {
        name: "no signing key",
        values: { nats: { signingKey: { create: false, content: "" } } },
        env: { NATS_SIGNING_KEY_FILE: undefined },
        names: /nats\.signingKey is required/,
      },
      {
        name: "a user seed as the signing key",
        values: { nats: { signingKey: { content: USER_SEED } } },
        env: { NATS_SIGNING_KEY_FILE: userSeedFile },
        names: /nats\.signingKey\.content holds no account seed/,
      },
      {
        name: "an account seed as the xkey",
        values: { nats: { xkey: { create: true, content: ACCOUNT_SEED } } },
        env: { NATS_XKEY_SEED_FILE: accountSeedFile },
        names: /nats\.xkey\.content holds no curve seed/,
      },
      {
        name: "namespace that is not a DNS label",
        values: { config: { watchNamespace: "Team_A" } },
        env: { K8S_NAMESPACE: "Team_A" },
        names: /\/config\/watchNamespace/,
      },
      {
        name: "issuer with whitespace",
        values: { jwt: { issuer: "https://kubernetes default" } },
        env: { JWT_ISSUER: "https://kubernetes default" },
        names: /jwt\.issuer "https:\/\/kubernetes default" contains whitespace/,
      },
      {
        name: "issuer listed twice",
        values: { jwt: { issuer: "https://a.example, https://a.example" } },
        env: { JWT_ISSUER: "https://a.example, https://a.example" },
        names: /jwt\.issuer "https:\/\/a\.example" is listed twice/,
      },
      {
        name: "issuer URL with credentials",
        values: { jwt: { issuer: "https://user:s3cretpw@a.example" } },
        env: { JWT_ISSUER: "https://user:s3cretpw@a.example" },
        names: /jwt\.issuer: entry 1 is not an http\(s\) URL without credentials/,
      },
      {
        name: "audience the apiserver accepts for its own API",
        values: { jwt: { audience: "https://kubernetes.default.svc.cluster.local" } },
        env: { JWT_AUDIENCE: "https://kubernetes.default.svc.cluster.local" },
        names:
          /jwt\.audience "https:\/\/kubernetes\.default\.svc\.cluster\.local" is an audience the Kubernetes apiserver accepts/,
      },
      {
        name: "audience that is one of the issuers",
        values: { jwt: { issuer: "https://oidc.example", audience: "https://oidc.example" } },
        env: { JWT_ISSUER: "https://oidc.example", JWT_AUDIENCE: "https://oidc.example" },
        names: /jwt\.audience "https:\/\/oidc\.example" is an audience/,
      },
      {
        name: "two audiences",
        values: { jwt: { audience: "nats,other" } },
        env: { JWT_AUDIENCE: "nats,other" },
        names: /jwt\.audience "nats,other" must be one audience/,
      },
      {
        name: "JWKS URL that is not http(s)",
        values: { jwt: { jwksUrl: "ftp://kubernetes/jwks" } },
        env: { JWKS_URL: "ftp://kubernetes/jwks" },
        names: /\/jwt\/jwksUrl/,
      },
      {
        name: "annotation prefix with two slashes",
        values: { config: { annotationPrefix: "a/b/" } },
        env: { SA_ANNOTATION_PREFIX: "a/b/" },
        names: /\/config\/annotationPrefix/,
      },
      {
        name: "queue group with a wildcard",
        values: { config: { queueGroup: "callout.*" } },
        env: { NATS_QUEUE_GROUP: "callout.*" },
        names: /\/config\/queueGroup/,
      },
    ];
    for (const c of cases) {
      const env = { ...good, ...c.env };
      assert.notEqual(serviceVerdict(env), undefined, `${c.name}: the service should refuse it`);
      const text = await helmFailure(merge(BASE, c.values));
      assert.match(text, c.names, c.name);
      assert.doesNotMatch(text, /s3cretpw|t0ken/, `${c.name}: a secret in the message`);
      assert.doesNotMatch(text, new RegExp(USER_SEED), `${c.name}: a seed in the message`);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("what the service accepts installs, and the rendered env starts it (logLevel INFO, several URLs, bounds)", async () => {
  const accepted: Values[] = [
    { logLevel: "INFO" },
    { logLevel: "Warning" },
    { logLevel: "error" },
    { nats: { url: "nats-0.nats:4222, tls://nats-1.nats:4222,nats://[::1]:4222" } },
    { secretEnv: { NATS_URL: "nats://callout:pw@nats:4222" } },
    { extraEnv: [{ name: "NATS_URL", value: "tls://nats:4222" }] },
    { config: { userJwtTtl: "10s", cacheCleanupInterval: "10s" } },
    { config: { userJwtTtl: "24h" } },
    { config: { userJwtTtl: "1h30m", annotationPrefix: "example.com/" } },
    { nats: { token: "t0ken" } },
    { jwt: { issuer: "https://a.example, https://b.example/path,kubernetes/serviceaccount" } },
    { jwt: { audience: "nats-prod" } },
    {
      jwt: { audience: "kubernetes" },
      extraEnv: [{ name: "JWT_AUDIENCE_ALLOW_API_AUDIENCE", value: "true" }],
    },
    { nats: { xkey: { create: true, content: CURVE_SEED } } },
  ];
  for (const values of accepted) {
    const root = await Deno.makeTempDir({ prefix: "chart-pod-" });
    try {
      const docs = await renderChart(merge(BASE, values));
      const env = await materializePod(docs, { root });
      assert.equal(serviceVerdict(env), undefined, JSON.stringify(values));
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  }
});

Deno.test("helm lint passes with the defaults and with every chart/ci values file; Chart.yaml has kubeVersion, home, sources, icon", async () => {
  const defaults = await runHelm(["lint", "--strict", CHART_DIR]);
  assert.match(defaults, /0 chart\(s\) failed/);
  const ci: string[] = [];
  for await (const entry of Deno.readDir(`${CHART_DIR}/ci`)) {
    if (entry.name.endsWith("-values.yaml")) ci.push(`${CHART_DIR}/ci/${entry.name}`);
  }
  assert(ci.length >= 2, "chart/ci holds the chart-testing value sets");
  for (const file of ci.sort()) {
    const out = await runHelm(["lint", "--strict", CHART_DIR, "-f", file]);
    assert.match(out, /0 chart\(s\) failed/, file);
    assert.doesNotMatch(out, /\[(INFO|WARNING|ERROR)\]/, file);
    // The rendered pod starts the service (existing Secrets given real seeds).
    const root = await Deno.makeTempDir({ prefix: "chart-pod-" });
    try {
      const docs = await renderChart({}, { valuesFiles: [file] });
      const env = await materializePod(docs, {
        root,
        existingSecrets: {
          "nats-callout-keys": { "signing.key": ACCOUNT_SEED, "xkey.seed": CURVE_SEED },
          "nats-callout-creds": { "user.creds": "creds" },
          "nats-ca": { "ca.crt": "ca" },
        },
      });
      assert.equal(serviceVerdict(env), undefined, file);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  }
  const chart = parseYaml(await Deno.readTextFile(`${CHART_DIR}/Chart.yaml`)) as Values;
  assert.match(String(chart.kubeVersion), /^>=1\.\d+\.\d+-0$/);
  assert.match(String(chart.home), /^https:\/\//);
  assert(Array.isArray(chart.sources) && chart.sources.length > 0);
  assert.match(String(chart.icon), /^https:\/\/.*\.(svg|png)$/);
  // `helm template` assumes v1.20 unless told: the chart's floor must be stated, and met by the suite's.
  const old = await helmFailure(BASE, { kubeVersion: "1.20.0" });
  assert.match(old, /requires kubeVersion/);
});

Deno.test("NetworkPolicy with defaults reaches the apiserver by port 443 and 6443; apiServerCIDRs narrow it", async () => {
  const egressOf = async (values: Values): Promise<Manifest[]> => {
    const docs = await renderChart(merge(BASE, values));
    return field(findOne(docs, "NetworkPolicy"), "spec", "egress") as Manifest[];
  };
  const apiRule = (rules: Manifest[]): Manifest => {
    const found = rules.filter((r) =>
      JSON.stringify(r.ports) ===
        JSON.stringify([{ protocol: "TCP", port: 443 }, { protocol: "TCP", port: 6443 }])
    );
    assert.equal(found.length, 1, JSON.stringify(rules));
    return found[0] as Manifest;
  };
  const defaults = await egressOf({ networkPolicy: { enabled: true } });
  assert.equal(apiRule(defaults).to, undefined, "any destination on the apiserver ports");
  assert.doesNotMatch(JSON.stringify(defaults), /apiserver/);
  const narrowed = await egressOf({
    networkPolicy: { enabled: true, apiServerCIDRs: ["10.0.0.1/32", "fd00::1/128"] },
  });
  assert.deepStrictEqual(apiRule(narrowed).to, [
    { ipBlock: { cidr: "10.0.0.1/32" } },
    { ipBlock: { cidr: "fd00::1/128" } },
  ]);
  // DNS and NATS stay as they were.
  assert(defaults.some((r) => JSON.stringify(r.ports).includes('"port":53')));
  assert(defaults.some((r) => JSON.stringify(r.ports).includes('"port":4222')));
});

Deno.test("NATS Secrets reach the pod as one directory (no subPath), so rotations arrive; pods roll on change", async () => {
  const values = merge(BASE, {
    nats: {
      xkey: { existingSecret: "keys" },
      userCredentials: { existingSecret: "creds", existingSecretKey: "c" },
      tls: { ca: { existingSecret: "ca" }, client: { existingSecret: "client" } },
    },
  });
  const docs = await renderChart(values);
  const mounts = field(container(docs), "volumeMounts") as Manifest[];
  assert.deepStrictEqual(mounts.filter((m) => m.subPath !== undefined), []);
  const natsMount = mounts.find((m) => m.mountPath === "/etc/nats");
  assert(natsMount, "one mount at /etc/nats");
  const volume = (field(pod(docs), "volumes") as Manifest[]).find((v) => v.name === natsMount.name);
  const sources = field(volume, "projected", "sources") as Manifest[];
  assert.deepStrictEqual(
    sources.map((s) => [field(s, "secret", "name"), field(s, "secret", "items")]),
    [
      ["creds", [{ key: "c", path: "user.creds" }]],
      [`${FULL}-nats-signing-key`, [{ key: "signing.key", path: "signing.key" }]],
      ["keys", [{ key: "xkey.seed", path: "xkey.seed" }]],
      ["ca", [{ key: "ca.crt", path: "tls/ca/ca.crt" }]],
      ["client", [{ key: "tls.crt", path: "tls/client/tls.crt" }, {
        key: "tls.key",
        path: "tls/client/tls.key",
      }]],
    ],
  );
  // The env vars point at the same file names as before (the reference's paths).
  const env = deploymentEnv(docs, { existingSecrets: { keys: { "xkey.seed": "x" } } });
  assert.equal(env.NATS_SIGNING_KEY_FILE, "/etc/nats/signing.key");
  assert.equal(env.NATS_USER_CREDS_FILE, "/etc/nats/user.creds");
  assert.equal(env.NATS_XKEY_SEED_FILE, "/etc/nats/xkey.seed");
  assert.equal(env.NATS_TLS_CA_FILE, "/etc/nats/tls/ca/ca.crt");

  // A changed chart-created Secret changes the pod template (a rollout); the same values do not.
  const annotations = async (content: string): Promise<Values> =>
    field(
      findOne(
        await renderChart(merge(BASE, { nats: { signingKey: { content } } })),
        "Deployment",
        FULL,
      ),
      "spec",
      "template",
      "metadata",
      "annotations",
    ) as Values;
  const first = await annotations(ACCOUNT_SEED);
  const again = await annotations(ACCOUNT_SEED);
  const rotated = await annotations(decoder.decode(createAccount().getSeed()));
  assert.equal(first["checksum/secrets"], again["checksum/secrets"]);
  assert.notEqual(first["checksum/secrets"], rotated["checksum/secrets"]);
  // Existing Secrets are read with lookup at install/upgrade; under `helm template` it finds none.
  assert.match(String(first["checksum/existing-secrets"]), /^[0-9a-f]{64}$/);
});

Deno.test('PodDisruptionBudget: maxUnavailable 0 renders 0, null and "" mean 1, minAvailable wins when set', async () => {
  const spec = async (pdb: Values): Promise<Values> =>
    field(
      findOne(await renderChart(merge(BASE, { podDisruptionBudget: pdb })), "PodDisruptionBudget"),
      "spec",
    ) as Values;
  const pick = (s: Values) => ({ minAvailable: s.minAvailable, maxUnavailable: s.maxUnavailable });
  assert.deepStrictEqual(pick(await spec({ maxUnavailable: 0 })), {
    minAvailable: undefined,
    maxUnavailable: 0,
  });
  assert.deepStrictEqual(pick(await spec({ maxUnavailable: null })), {
    minAvailable: undefined,
    maxUnavailable: 1,
  });
  assert.deepStrictEqual(pick(await spec({ maxUnavailable: "" })), {
    minAvailable: undefined,
    maxUnavailable: 1,
  });
  assert.deepStrictEqual(pick(await spec({ maxUnavailable: "50%" })), {
    minAvailable: undefined,
    maxUnavailable: "50%",
  });
  assert.deepStrictEqual(pick(await spec({ minAvailable: 0 })), {
    minAvailable: 0,
    maxUnavailable: undefined,
  });
  assert.deepStrictEqual(pick(await spec({ minAvailable: 1, maxUnavailable: 0 })), {
    minAvailable: 1,
    maxUnavailable: undefined,
  });
});

/**
 * The `helm test` objects of a render: its hooks (the Pod alone) and its ServiceAccount, an ordinary
 * object of the release (helm fetches "pod logs" for every test hook by name).
 */
async function testHook(values: Values, options: RenderOptions = {}) {
  const all = await renderChart(merge(BASE, values), options);
  const docs = all.filter(isHook);
  const testPod = findOne(docs, "Pod");
  const sa = findOne(all, "ServiceAccount", String(field(testPod, "spec", "serviceAccountName")));
  const c = (field(testPod, "spec", "containers") as Manifest[])[0] as Manifest;
  const env: Record<string, string> = {};
  for (const e of c.env as { name: string; value: string }[]) env[e.name] = e.value;
  const volumes = field(testPod, "spec", "volumes") as Manifest[];
  const sources = field(volumes[0], "projected", "sources") as Manifest[];
  const audience = field(sources[0], "serviceAccountToken", "audience");
  return { docs, sa, pod: testPod, container: c, env, audience };
}

Deno.test("the helm test hook: a test ServiceAccount's projected token, audience and image from values, no credentials of the service", async () => {
  const hook = await testHook({
    nats: { url: "nats://callout:pw@nats.nats.svc:4222" },
  });
  assert.deepStrictEqual(hook.docs.map((d) => d.kind), ["Pod"], "one test suite: the Pod");
  assert.equal(field(hook.pod, "metadata", "annotations", "helm.sh/hook"), "test");
  for (const d of [hook.pod, hook.sa]) {
    assert.equal(field(d, "metadata", "namespace"), "nats-system");
  }
  assert.equal(
    isHook(hook.sa),
    false,
    "the ServiceAccount is installed with the release, so it exists before the Pod",
  );
  assert.equal(field(hook.sa, "automountServiceAccountToken"), false);
  assert.equal(field(hook.pod, "spec", "serviceAccountName"), field(hook.sa, "metadata", "name"));
  assert.equal(field(hook.pod, "spec", "automountServiceAccountToken"), false);
  assert.equal(field(hook.pod, "spec", "restartPolicy"), "Never");
  assert.equal(hook.audience, "nats");
  assert.equal(hook.container.image, "natsio/nats-box:0.14.5");
  assert.equal(hook.env.TEST_NATS_URL, "nats://nats.nats.svc:4222", "no user:pass@ of the service");
  assert.equal(hook.env.TEST_SUBJECT, "nats-system.helm-test");
  assert.doesNotMatch(JSON.stringify(hook.docs), /callout:pw|signing/);
  // Not selected by the Deployment, Service, PDB or NetworkPolicy (a ReplicaSet would adopt it).
  const selector = field(
    findOne(await renderChart(BASE), "Deployment", FULL),
    "spec",
    "selector",
    "matchLabels",
  ) as Record<string, string>;
  const labels = field(hook.pod, "metadata", "labels") as Record<string, string>;
  assert(Object.entries(selector).some(([k, v]) => labels[k] !== v));

  const custom = await testHook({
    jwt: { audience: "nats-prod" },
    config: { watchNamespace: "apps" },
    secretEnv: { NATS_URL: "tls://u:p@nats-a:4222,tls://u:p@nats-b:4222" },
    test: {
      image: { repository: "registry.example.com/nats-box", tag: "0.14.5" },
      sentinelCredentials: { existingSecret: "sentinel" },
    },
  });
  assert.equal(custom.audience, "nats-prod");
  assert.equal(field(custom.pod, "metadata", "namespace"), "apps", "where the service watches");
  assert.equal(custom.env.TEST_SUBJECT, "apps.helm-test");
  assert.equal(custom.env.TEST_NATS_URL, "tls://nats-a:4222,tls://nats-b:4222");
  assert.equal(custom.container.image, "registry.example.com/nats-box:0.14.5");
  assert.equal(custom.env.TEST_CREDS_FILE, "/etc/nats-test/sentinel.creds");
  const overridden = await testHook({ jwt: { audience: "a" }, test: { audience: "b" } });
  assert.equal(overridden.audience, "b");
  const off = (await renderChart(merge(BASE, { test: { enabled: false } }))).filter(isHook);
  assert.deepStrictEqual(off, []);
});

/** The nats CLI, which the hook's image provides; `go install` puts it in ~/go/bin. */
async function natsCliPath(): Promise<string> {
  const path = [`${Deno.env.get("HOME") ?? ""}/go/bin`, Deno.env.get("PATH") ?? ""].join(":");
  const found = await new Deno.Command("sh", {
    args: ["-c", "command -v nats"],
    env: { PATH: path },
  }).output();
  assert(
    found.success,
    "the nats CLI is needed: go install github.com/nats-io/natscli/nats@v0.5.1 " +
      "(it lands in $(go env GOPATH)/bin; `bash .ci/run` does this)",
  );
  return path;
}

/** Run the hook container's script as the kubelet would, with its env and a token file. */
async function runHookScript(
  hook: Awaited<ReturnType<typeof testHook>>,
  env: Record<string, string>,
): Promise<{ code: number; output: string }> {
  const command = hook.container.command as string[];
  assert.deepStrictEqual(command.slice(0, 2), ["sh", "-ec"]);
  const out = await new Deno.Command("sh", {
    args: ["-ec", command[2] as string],
    env: { ...hook.env, ...env },
    clearEnv: true,
    stdin: "null",
  }).output();
  return { code: out.code, output: decoder.decode(out.stdout) + decoder.decode(out.stderr) };
}

Deno.test("the helm test script logs in through the callout, publishes and answers itself; without the ServiceAccount it fails", async () => {
  const PATH = await natsCliPath();
  await using stack = await Stack.start({ captureLogs: true });
  const dir = await Deno.makeTempDir({ prefix: "chart-hook-" });
  try {
    const hook = await testHook({ nats: { url: stack.nats.url }, test: { attempts: 3 } });
    const namespace = String(field(hook.sa, "metadata", "namespace"));
    const name = String(field(hook.sa, "metadata", "name"));
    const tokenFile = `${dir}/token`;
    await Deno.writeTextFile(tokenFile, await stack.token(namespace, name));
    const env = { PATH, HOME: dir, TEST_TOKEN_FILE: tokenFile };

    // Before the ServiceAccount exists every login is refused: the script says so and fails.
    const refused = await runHookScript(hook, env);
    assert.equal(refused.code, 1, refused.output);
    assert.match(
      refused.output,
      /FAIL: no login and publish on nats-system\.helm-test after 3 attempts/,
    );

    stack.addServiceAccount(namespace, name);
    await Deno.writeTextFile(tokenFile, await stack.token(namespace, name));
    const passed = await runHookScript(hook, env);
    assert.equal(passed.code, 0, passed.output);
    assert.match(passed.output, /PASS: publish, subscribe and reply on nats-system\.helm-test/);
    assert(
      stack.logs.some((l) =>
        l.event === "login_allowed" && l.namespace === namespace && l.serviceaccount === name
      ),
      "the service allowed the test ServiceAccount",
    );
    assert.doesNotMatch(passed.output + refused.output, /eyJ/, "the token is never printed");

    // A subject the ServiceAccount is not granted (outside its namespace): the script fails.
    const elsewhere = await runHookScript(
      await testHook({ nats: { url: stack.nats.url }, test: { attempts: 1, subject: "team-b.x" } }),
      env,
    );
    assert.equal(elsewhere.code, 1, elsewhere.output);
    assert.match(elsewhere.output, /FAIL: /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const ROOT = new URL("../..", import.meta.url).pathname;
/** Where a new user reads install commands. */
const INSTRUCTIONS = [
  "README.md",
  "chart/README.md",
  "docs/getting-started.md",
  "dev/dev.ts",
  ".ci/run",
  "tests/support/nats_server.ts",
  "tests/support/chart.ts",
];

Deno.test("install instructions work on Debian/Ubuntu's system Python (PEP 668) and say where go install puts binaries", async () => {
  for (const file of INSTRUCTIONS) {
    const text = await Deno.readTextFile(`${ROOT}${file}`);
    // `pip install` only from a venv's own pip (…/bin/pip) or as `pipx install`.
    for (const line of text.split("\n")) {
      const command = line
        .replace(/\b[Aa] bare `pip install`/g, "") // prose saying why not
        .replace(/\S*\/bin\/(pip3?|python3?(\.\d+)? -m pip) install/g, "") // a venv's own pip
        .replace(/"\$[A-Z_]+" -m pip install/g, ""); // a venv's python, by variable
      assert.doesNotMatch(
        command,
        /(^|[\s`'"(;&|])(sudo )?(python3? -m )?pip3? install\b/,
        `${file}: ${line}`,
      );
    }
    if (/go install /.test(text)) {
      assert.match(
        text,
        /\$\(go env GOPATH\)\/bin/,
        `${file} gives go install without its bin dir`,
      );
    }
  }
  const readme = await Deno.readTextFile(`${ROOT}README.md`);
  assert.match(readme, /helm-unittest/);
  assert.match(readme, /go install helm\.sh\/helm\/v3\/cmd\/helm@/);
  assert.match(readme, /podman build -f Containerfile/);
  assert.match(readme, /## Differences from the Go reference/);
  assert.doesNotMatch(readme, /values unchanged|drop-in replacement/);
});

Deno.test(".ci/run installs nats-server on a machine with only the system Python (a venv, not pip --user)", async () => {
  const ci = await Deno.readTextFile(`${ROOT}.ci/run`);
  const start = ci.indexOf("NATS_VENV=");
  const end = ci.indexOf("  hash -r\nfi\n", start);
  assert(start >= 0 && end > start, ".ci/run's nats-server block moved; update this test");
  const block = ci.slice(start, end + "  hash -r\nfi\n".length);
  const version = /^NATS_SERVER_VERSION=(\S+)$/m.exec(ci)?.[1];
  assert(version, ".ci/run pins NATS_SERVER_VERSION");
  const python = "/usr/bin/python3";
  const managed = await Deno.stat("/usr/lib/python3.11/EXTERNALLY-MANAGED").then(
    () => true,
    () => false,
  );
  const home = await Deno.makeTempDir({ prefix: "ci-home-" });
  try {
    // No Go and no nats-server on PATH: only the distribution's python3, as on a fresh Debian.
    const script = `set -euo pipefail
log() { printf '==> %s\\n' "$*"; }
NATS_SERVER_VERSION=${version}
${block}
nats-server --version`;
    const out = await new Deno.Command("bash", {
      args: ["-c", script],
      env: { HOME: home, PATH: "/usr/bin:/bin" },
      clearEnv: true,
      stdin: "null",
    }).output();
    const text = decoder.decode(out.stdout) + decoder.decode(out.stderr);
    assert.equal(out.code, 0, `${python} (externally managed: ${managed}): ${text}`);
    assert.match(text, /into the venv .*\/\.cache\/nats-k8s-oidc-callout\/venv/);
    assert.match(text, new RegExp(`nats-server: v${version.replaceAll(".", "\\.")}`));
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
