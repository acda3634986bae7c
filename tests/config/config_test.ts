import assert from "node:assert/strict";
import * as nkeys from "@nats-io/nkeys";
import { type Config, ConfigError, describeConfig, loadConfig } from "../../lib/config/config.ts";
import { createLogger } from "../../lib/telemetry/log.ts";

const dec = new TextDecoder();

/** Fresh keys per test run; nothing secret is committed. */
function freshKeys() {
  const account = nkeys.createAccount();
  const curve = nkeys.createCurve();
  const user = nkeys.createUser();
  return {
    accountSeed: dec.decode(account.getSeed()),
    accountPublic: account.getPublicKey(),
    curveSeed: dec.decode(curve.getSeed()),
    curvePublic: curve.getPublicKey(),
    userSeed: dec.decode(user.getSeed()),
  };
}

const keys = freshKeys();

/** A creds-style file whose seed block holds `seed`. */
function credsFile(seed: string): string {
  return [
    "-----BEGIN NATS USER JWT-----",
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.sig",
    "------END NATS USER JWT------",
    "",
    "************************* IMPORTANT *************************",
    "NKEY Seed printed below can be used to sign and prove identity.",
    "",
    "-----BEGIN USER NKEY SEED-----",
    seed,
    "------END USER NKEY SEED------",
    "",
  ].join("\n");
}

/** An in-memory file system for the injected reader. */
function files(entries: Record<string, string>): (path: string) => string {
  return (path) => {
    const text = entries[path];
    if (text === undefined) throw new Deno.errors.NotFound(`No such file: '${path}'`);
    return text;
  };
}

const FILES = files({
  "/keys/signing.nk": keys.accountSeed + "\n",
  "/keys/signing.creds": credsFile(keys.accountSeed),
  "/keys/xkey.nk": keys.curveSeed,
  "/keys/user.nk": keys.userSeed,
  "/keys/public.nk": keys.accountPublic,
  "/keys/corrupt.nk": keys.accountSeed.slice(0, -3) +
    (keys.accountSeed.endsWith("AAA") ? "BBB" : "AAA"),
  "/keys/two.nk": `${keys.accountSeed}\n${keys.accountSeed}\n`,
  "/keys/empty.nk": "\n",
  "/keys/begin-no-seed.creds":
    "-----BEGIN NATS USER JWT-----\nabc\n------END NATS USER JWT------\n",
});

const BASE: Record<string, string> = {
  NATS_ACCOUNT: "APP",
  NATS_SIGNING_KEY_FILE: "/keys/signing.nk",
};

function load(env: Record<string, string | undefined>): Config {
  return loadConfig({ ...BASE, ...env }, { readTextFile: FILES });
}

/** The ConfigError thrown for `env` (merged over BASE). */
function problemsOf(env: Record<string, string | undefined>): ConfigError {
  try {
    load(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err;
  }
  assert.fail(`no ConfigError for ${JSON.stringify(env)}`);
}

Deno.test("config: defaults match the reference, in cluster", () => {
  const config = load({});
  assert.equal(config.port, 8080);
  assert.equal(config.logLevel, "info");
  assert.deepEqual(config.nats.servers, ["nats://nats:4222"]);
  assert.equal(config.nats.credsFile, undefined);
  assert.equal(config.nats.token, undefined);
  assert.equal(config.nats.tls, undefined);
  assert.equal(config.nats.queueGroup, "q");
  assert.equal(config.account, "APP");
  assert.equal(config.signingKeyFile, "/keys/signing.nk");
  assert.equal(config.signingKeySeed, keys.accountSeed);
  assert.equal(config.xkeySeed, undefined);
  assert.equal(config.userJwtTtlMs, undefined, "no cap: user JWTs live as long as their token");
  assert.equal(config.jwt.issuers, undefined, "in-cluster issuer is discovered");
  assert.deepEqual(config.jwt, { audience: "nats", allowApiAudience: false });
  assert.deepEqual(config.k8s, {
    inCluster: true,
    apiServerUrl: "https://kubernetes.default.svc",
    caFile: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
    tokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token",
    watchPods: true,
  });
  assert.equal(config.annotationPrefix, "nats.io/");
  assert.equal(config.relistIntervalMs, 15 * 60_000);
  assert.equal(config.serviceAccountsFile, undefined);
});

Deno.test("config: every variable is read when set", () => {
  const config = load({
    PORT: "9090",
    LOG_LEVEL: "debug",
    NATS_URL: "nats://a:4222, tls://b:4443,c:4222",
    NATS_USER_CREDS_FILE: "/etc/nats/auth.creds",
    NATS_TLS_CA_FILE: "/tls/ca.pem",
    NATS_TLS_CERT_FILE: "/tls/cert.pem",
    NATS_TLS_KEY_FILE: "/tls/key.pem",
    NATS_QUEUE_GROUP: "callout",
    NATS_XKEY_SEED_FILE: "/keys/xkey.nk",
    NATS_USER_JWT_TTL: "1h",
    JWKS_URL: "https://issuer.example/keys",
    JWT_ISSUER: "https://issuer.example",
    JWT_AUDIENCE: "nats-prod",
    K8S_IN_CLUSTER: "false",
    K8S_NAMESPACE: "team-a",
    KUBECONFIG: "/home/me/.kube/config",
    SA_ANNOTATION_PREFIX: "example.com/",
    CACHE_CLEANUP_INTERVAL: "1m30s",
    SERVICEACCOUNTS_FILE: "/dev/sa.yaml",
  });
  assert.equal(config.port, 9090);
  assert.equal(config.logLevel, "debug");
  assert.deepEqual(config.nats.servers, ["nats://a:4222", "tls://b:4443", "nats://c:4222"]);
  assert.equal(config.nats.credsFile, "/etc/nats/auth.creds");
  assert.deepEqual(config.nats.tls, {
    caFile: "/tls/ca.pem",
    certFile: "/tls/cert.pem",
    keyFile: "/tls/key.pem",
  });
  assert.equal(config.nats.queueGroup, "callout");
  assert.equal(config.xkeySeedFile, "/keys/xkey.nk");
  assert.equal(config.xkeySeed, keys.curveSeed);
  assert.equal(config.userJwtTtlMs, 3_600_000);
  assert.deepEqual(config.jwt, {
    jwksUrl: "https://issuer.example/keys",
    issuers: ["https://issuer.example"],
    audience: "nats-prod",
    allowApiAudience: false,
  });
  assert.equal(config.k8s.inCluster, false);
  assert.equal(config.k8s.namespace, "team-a");
  assert.equal(config.k8s.kubeconfig, "/home/me/.kube/config");
  assert.equal(config.annotationPrefix, "example.com/");
  assert.equal(config.relistIntervalMs, 90_000);
  assert.equal(config.serviceAccountsFile, "/dev/sa.yaml");
});

Deno.test("config: the result is deeply frozen", () => {
  const config = load({ NATS_URL: "nats://a:4222,nats://b:4222" });
  assert.ok(Object.isFrozen(config));
  assert.ok(Object.isFrozen(config.nats));
  assert.ok(Object.isFrozen(config.nats.servers));
  assert.ok(Object.isFrozen(config.jwt));
  assert.ok(Object.isFrozen(config.k8s));
  assert.throws(() => (config.nats.servers as string[]).push("x"), TypeError);
});

Deno.test("config: empty values count as unset, like the reference", () => {
  const config = load({
    PORT: "",
    LOG_LEVEL: "  ",
    NATS_URL: "",
    K8S_NAMESPACE: "",
    JWT_ISSUER: "",
  });
  assert.equal(config.port, 8080);
  assert.equal(config.logLevel, "info");
  assert.deepEqual(config.nats.servers, ["nats://nats:4222"]);
  assert.equal(config.k8s.namespace, undefined);
  assert.equal(config.jwt.issuers, undefined);
});

Deno.test("config: every problem is reported at once, one per line", () => {
  const err = problemsOf({
    NATS_ACCOUNT: undefined,
    NATS_SIGNING_KEY_FILE: undefined,
    PORT: "abc",
    LOG_LEVEL: "loud",
    K8S_IN_CLUSTER: "maybe",
    CACHE_CLEANUP_INTERVAL: "soon",
    NATS_URL: "not a url",
  });
  const expected = [
    "PORT",
    "LOG_LEVEL",
    "NATS_URL",
    "NATS_ACCOUNT",
    "NATS_SIGNING_KEY_FILE",
    "K8S_IN_CLUSTER",
    "CACHE_CLEANUP_INTERVAL",
  ];
  assert.equal(err.problems.length, expected.length, err.message);
  for (const variable of expected) {
    assert.ok(err.problems.some((p) => p.startsWith(variable + ":")), `${variable} missing`);
  }
  const lines = err.message.split("\n");
  assert.equal(lines.length, expected.length + 1);
  assert.match(lines[0]!, /7 problems/);
  for (const p of err.problems) assert.ok(lines.includes(`  - ${p}`));
  assert.ok(Object.isFrozen(err.problems));
});

Deno.test("config: each malformed value is a problem naming its variable, not a silent default", () => {
  const cases: [Record<string, string>, string, RegExp][] = [
    [{ PORT: "abc" }, "PORT", /"abc" is not a port number/],
    [{ PORT: "0" }, "PORT", /not a port number/],
    [{ PORT: "65536" }, "PORT", /not a port number/],
    [{ PORT: "80.5" }, "PORT", /not a port number/],
    [{ PORT: "-1" }, "PORT", /not a port number/],
    [{ LOG_LEVEL: "loud" }, "LOG_LEVEL", /"loud" is not one of/],
    [{ K8S_IN_CLUSTER: "maybe" }, "K8S_IN_CLUSTER", /"maybe" is not a boolean/],
    [{ K8S_IN_CLUSTER: "yes" }, "K8S_IN_CLUSTER", /not a boolean/],
    [{ CACHE_CLEANUP_INTERVAL: "soon" }, "CACHE_CLEANUP_INTERVAL", /"soon" is not a duration/],
    [{ CACHE_CLEANUP_INTERVAL: "15" }, "CACHE_CLEANUP_INTERVAL", /not a duration/],
    [{ CACHE_CLEANUP_INTERVAL: "5s" }, "CACHE_CLEANUP_INTERVAL", /below the minimum of 10s/],
    [{ NATS_USER_JWT_TTL: "later" }, "NATS_USER_JWT_TTL", /not a duration/],
    [{ NATS_USER_JWT_TTL: "9s" }, "NATS_USER_JWT_TTL", /below the minimum of 10s/],
    [{ NATS_USER_JWT_TTL: "24h1s" }, "NATS_USER_JWT_TTL", /above the maximum of 24h/],
    [{ NATS_URL: "not a url" }, "NATS_URL", /not a URL/],
    [{ NATS_URL: "nats://a:4222,,nats://b:4222" }, "NATS_URL", /empty server entry/],
    [{ NATS_URL: "ws://nats:8080" }, "NATS_URL", /unsupported scheme "ws"/],
    [{ NATS_URL: "nats://host:99999" }, "NATS_URL", /not a URL/],
    [{ NATS_QUEUE_GROUP: "a b" }, "NATS_QUEUE_GROUP", /whitespace/],
    [{ NATS_SYSTEM_PASSWORD: "p" }, "NATS_SYSTEM_USER", /required when NATS_SYSTEM_PASSWORD/],
    [
      { NATS_SYSTEM_TOKEN: "t", NATS_SYSTEM_USER: "sys" },
      "NATS_SYSTEM_CREDS_FILE, NATS_SYSTEM_TOKEN and NATS_SYSTEM_USER",
      /set only one/,
    ],
    [{ NATS_QUEUE_GROUP: "q.>" }, "NATS_QUEUE_GROUP", /wildcard/],
    [{ NATS_ACCOUNT: "MY APP" }, "NATS_ACCOUNT", /whitespace/],
    [{ JWKS_URL: "not a url" }, "JWKS_URL", /not a URL/],
    [{ JWKS_URL: "ftp://x/jwks" }, "JWKS_URL", /not an http\(s\) URL/],
    [{ JWT_ISSUER: "https://a b" }, "JWT_ISSUER", /whitespace/],
    [{ K8S_NAMESPACE: "Team_A" }, "K8S_NAMESPACE", /not a valid namespace/],
    [{ K8S_NAMESPACE: "a".repeat(64) }, "K8S_NAMESPACE", /not a valid namespace/],
    [{ SA_ANNOTATION_PREFIX: "a/b/" }, "SA_ANNOTATION_PREFIX", /at most one "\/"/],
    [
      { NATS_TLS_CERT_FILE: "/tls/cert.pem" },
      "NATS_TLS_KEY_FILE",
      /required when NATS_TLS_CERT_FILE/,
    ],
    [
      { NATS_TLS_KEY_FILE: "/tls/key.pem" },
      "NATS_TLS_CERT_FILE",
      /required when NATS_TLS_KEY_FILE/,
    ],
  ];
  for (const [env, variable, reason] of cases) {
    const err = problemsOf(env);
    assert.equal(err.problems.length, 1, `${JSON.stringify(env)}: ${err.message}`);
    assert.ok(err.problems[0]!.startsWith(variable + ":"), String(err.problems[0]));
    assert.match(err.problems[0]!, reason);
  }
});

Deno.test("config: accepted spellings of booleans, levels and servers", () => {
  for (
    const [value, inCluster] of [["1", true], ["T", true], ["True", true], ["0", false], [
      "F",
      false,
    ], ["FALSE", false]] as const
  ) {
    const extra = inCluster ? {} : { JWKS_PATH: "/jwks.json", JWT_ISSUER: "https://i" };
    assert.equal(load({ K8S_IN_CLUSTER: value, ...extra }).k8s.inCluster, inCluster, value);
  }
  for (
    const [value, level] of [["warning", "warn"], ["WARN", "warn"], ["Error", "error"], [
      "fatal",
      "error",
    ], ["DEBUG", "debug"]]
  ) {
    assert.equal(load({ LOG_LEVEL: value }).logLevel, level, String(value));
  }
  assert.deepEqual(load({ NATS_URL: "localhost:4222" }).nats.servers, ["nats://localhost:4222"]);
  assert.deepEqual(load({ NATS_URL: "nats://u:p@h:4222" }).nats.servers, ["nats://u:p@h:4222"]);
});

Deno.test("config: out of cluster with SERVICEACCOUNTS_FILE, a key source and the issuer are required", () => {
  const err = problemsOf({ K8S_IN_CLUSTER: "false", SERVICEACCOUNTS_FILE: "/sa.yaml" });
  assert.deepEqual(err.problems.map((p) => p.split(":")[0]), [
    "JWKS_URL or JWKS_PATH",
    "JWT_ISSUER",
  ]);

  const config = load({
    K8S_IN_CLUSTER: "false",
    JWKS_PATH: "/jwks.json",
    JWT_ISSUER: "https://i",
  });
  assert.deepEqual(config.jwt, {
    jwksPath: "/jwks.json",
    issuers: ["https://i"],
    audience: "nats",
    allowApiAudience: false,
  });
});

Deno.test("config: from a kubeconfig, the keys and the issuer default to the apiserver's own", () => {
  const config = load({ K8S_IN_CLUSTER: "false", KUBECONFIG: "/k/a:/k/b", HOME: "/home/me" });
  assert.deepEqual(config.jwt, { audience: "nats", allowApiAudience: false });
  assert.equal(config.k8s.kubeconfig, "/k/a:/k/b");
  assert.equal(config.k8s.home, "/home/me");
});

Deno.test("config: JWT_ISSUER takes a list; a value that cannot be an issuer fails at start", () => {
  assert.deepEqual(
    load({ JWT_ISSUER: "https://old.example, https://new.example" }).jwt.issuers,
    ["https://old.example", "https://new.example"],
  );
  assert.deepEqual(load({ JWT_ISSUER: "kubernetes/serviceaccount" }).jwt.issuers, [
    "kubernetes/serviceaccount",
  ]);
  // Any URL the apiserver accepts for --service-account-issuer.
  assert.deepEqual(load({ JWT_ISSUER: "spiffe://cluster.local,urn:k8s:sa" }).jwt.issuers, [
    "spiffe://cluster.local",
    "urn:k8s:sa",
  ]);
  const err = problemsOf({
    JWT_ISSUER: "https://a.example,,,https://a.example,https://x.example?q=1,https://u:p@h,:bad",
  });
  assert.deepEqual(err.problems, [
    'JWT_ISSUER: "" is empty (a comma too many?)',
    'JWT_ISSUER: "https://a.example" is listed twice',
    'JWT_ISSUER: "https://x.example?q=1" must not have a query or fragment',
    'JWT_ISSUER: "https://u:***@h" must not carry credentials',
    `JWT_ISSUER: ":bad" contains a ':' but is not a URL`,
  ]);
});

Deno.test("config: JWT_AUDIENCE equal to an audience the apiserver accepts is refused, unless allowed", () => {
  for (
    const audience of [
      "https://kubernetes.default.svc",
      "https://kubernetes.default.svc.cluster.local",
      "https://issuer.example",
    ]
  ) {
    const err = problemsOf({ JWT_AUDIENCE: audience, JWT_ISSUER: "https://issuer.example" });
    assert.equal(err.problems.length, 1, audience);
    assert.match(err.problems[0]!, /^JWT_AUDIENCE: .*every pod's default ServiceAccount token/);
    assert.match(err.problems[0]!, /JWT_AUDIENCE_ALLOW_API_AUDIENCE=true/);
  }
  const allowed = load({
    JWT_AUDIENCE: "https://kubernetes.default.svc",
    JWT_AUDIENCE_ALLOW_API_AUDIENCE: "true",
  });
  assert.equal(allowed.jwt.allowApiAudience, true);
  assert.match(
    problemsOf({ JWT_AUDIENCE: "nats,other" }).problems[0]!,
    /^JWT_AUDIENCE: "nats,other" must be one audience/,
  );
});

Deno.test("config: JWKS_URL and JWKS_PATH are exclusive; JWKS_PATH in cluster drops the URL default", () => {
  const err = problemsOf({ JWKS_URL: "https://x/jwks", JWKS_PATH: "/jwks.json" });
  assert.equal(err.problems.length, 1);
  assert.match(err.problems[0]!, /^JWKS_URL and JWKS_PATH: .*mutually exclusive/);

  const config = load({ JWKS_PATH: "/jwks.json" });
  assert.equal(config.jwt.jwksUrl, undefined);
  assert.equal(config.jwt.jwksPath, "/jwks.json");

  assert.deepEqual(load({ JWT_ISSUER: "https://k3s" }).jwt.issuers, ["https://k3s"]);
});

Deno.test("config: NATS_CREDS_FILE is an alias; creds file and token are exclusive", () => {
  assert.equal(load({ NATS_CREDS_FILE: "/old.creds" }).nats.credsFile, "/old.creds");
  assert.equal(
    load({ NATS_CREDS_FILE: "/same.creds", NATS_USER_CREDS_FILE: "/same.creds" }).nats.credsFile,
    "/same.creds",
  );
  const both = problemsOf({ NATS_CREDS_FILE: "/a.creds", NATS_USER_CREDS_FILE: "/b.creds" });
  assert.match(both.problems[0]!, /^NATS_USER_CREDS_FILE and NATS_CREDS_FILE:/);

  const secretToken = "s3cr3t-token-value";
  for (const variable of ["NATS_USER_CREDS_FILE", "NATS_CREDS_FILE"]) {
    const err = problemsOf({ [variable]: "/x.creds", NATS_TOKEN: secretToken });
    assert.equal(err.problems.length, 1);
    assert.match(err.problems[0]!, new RegExp(`^${variable} and NATS_TOKEN: .*mutually exclusive`));
    assert.ok(!err.message.includes(secretToken));
  }
  assert.equal(load({ NATS_TOKEN: secretToken }).nats.token, secretToken);
});

Deno.test("config: the signing seed is read plain or from a creds file's seed block", () => {
  assert.equal(load({}).signingKeySeed, keys.accountSeed);
  assert.equal(
    load({ NATS_SIGNING_KEY_FILE: "/keys/signing.creds" }).signingKeySeed,
    keys.accountSeed,
  );
});

Deno.test("config: bad seed files are problems that name the variable and path, never the seed", () => {
  const cases: [Record<string, string>, string, RegExp][] = [
    [
      { NATS_SIGNING_KEY_FILE: "/keys/missing.nk" },
      "NATS_SIGNING_KEY_FILE",
      /cannot read "\/keys\/missing.nk"/,
    ],
    [
      { NATS_SIGNING_KEY_FILE: "/keys/user.nk" },
      "NATS_SIGNING_KEY_FILE",
      /"\/keys\/user.nk" holds a seed of another kind \(SU\.\.\., user\); expected an account seed/,
    ],
    [{ NATS_SIGNING_KEY_FILE: "/keys/xkey.nk" }, "NATS_SIGNING_KEY_FILE", /SX\.\.\., curve/],
    [
      { NATS_SIGNING_KEY_FILE: "/keys/public.nk" },
      "NATS_SIGNING_KEY_FILE",
      /a public key, not a seed/,
    ],
    [{ NATS_SIGNING_KEY_FILE: "/keys/corrupt.nk" }, "NATS_SIGNING_KEY_FILE", /malformed seed/],
    [{ NATS_SIGNING_KEY_FILE: "/keys/two.nk" }, "NATS_SIGNING_KEY_FILE", /must hold one seed/],
    [{ NATS_SIGNING_KEY_FILE: "/keys/empty.nk" }, "NATS_SIGNING_KEY_FILE", /must hold one seed/],
    [
      { NATS_SIGNING_KEY_FILE: "/keys/begin-no-seed.creds" },
      "NATS_SIGNING_KEY_FILE",
      /no NKEY SEED block/,
    ],
    [
      { NATS_XKEY_SEED_FILE: "/keys/signing.nk" },
      "NATS_XKEY_SEED_FILE",
      /SA\.\.\., account.*expected a curve seed \(SX/,
    ],
    [{ NATS_XKEY_SEED_FILE: "/keys/nope" }, "NATS_XKEY_SEED_FILE", /cannot read "\/keys\/nope"/],
  ];
  for (const [env, variable, reason] of cases) {
    const err = problemsOf(env);
    assert.equal(err.problems.length, 1, err.message);
    assert.ok(err.problems[0]!.startsWith(variable + ":"), String(err.problems[0]));
    assert.match(err.problems[0]!, reason);
    for (const seed of [keys.accountSeed, keys.curveSeed, keys.userSeed]) {
      assert.ok(!err.message.includes(seed), `seed leaked: ${err.message}`);
      assert.ok(!err.message.includes(seed.slice(2, 20)), `seed part leaked: ${err.message}`);
    }
  }
});

Deno.test("config: the default reader reads real files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/signing.creds`;
    await Deno.writeTextFile(path, credsFile(keys.accountSeed));
    const config = loadConfig({ NATS_ACCOUNT: "APP", NATS_SIGNING_KEY_FILE: path });
    assert.equal(config.signingKeySeed, keys.accountSeed);
    let err: unknown;
    try {
      loadConfig({ NATS_ACCOUNT: "APP", NATS_SIGNING_KEY_FILE: `${dir}/absent` });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof ConfigError);
    assert.match(err.problems[0]!, /^NATS_SIGNING_KEY_FILE: cannot read ".*absent"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("config: describeConfig holds no seed, token or password, even through the logger", () => {
  const token = "tok-" + crypto.randomUUID();
  const password = "pw-" + crypto.randomUUID();
  const config = load({
    NATS_URL: `nats://svc:${password}@nats-a:4222,nats://nats-b:4222`,
    NATS_XKEY_SEED_FILE: "/keys/xkey.nk",
    JWKS_URL: `https://reader:${password}@issuer.example/keys`,
    K8S_IN_CLUSTER: "false",
    JWT_ISSUER: "https://issuer.example",
  });
  const withToken = load({ NATS_TOKEN: token });
  for (const described of [describeConfig(config), describeConfig(withToken)]) {
    const text = JSON.stringify(described);
    for (const secret of [keys.accountSeed, keys.curveSeed, token, password]) {
      assert.ok(!text.includes(secret), `secret in ${text}`);
    }
    const lines: string[] = [];
    createLogger({ write: (l) => lines.push(l) }).info("starting", { config: described });
    for (const secret of [keys.accountSeed, keys.curveSeed, token, password]) {
      assert.ok(!lines[0]!.includes(secret));
    }
  }
  const described = describeConfig(config);
  assert.deepEqual(described.nats_servers, ["nats://svc:***@nats-a:4222", "nats://nats-b:4222"]);
  assert.equal(described.jwks_url, "https://reader:***@issuer.example/keys");
  assert.equal(described.nats_auth, "url_userinfo");
  assert.equal(described.signing_key_public, keys.accountPublic);
  assert.equal(described.xkey_public, keys.curvePublic);
  assert.equal(describeConfig(withToken).nats_auth, "token");
});

Deno.test("config: describeConfig summarises the settings an operator checks at start", () => {
  const described = describeConfig(load({ NATS_CREDS_FILE: "/etc/nats/auth.creds" }));
  assert.deepEqual(described, {
    port: 8080,
    log_level: "info",
    nats_servers: ["nats://nats:4222"],
    nats_auth: "user_credentials_file",
    nats_user_file: "/etc/nats/auth.creds",
    nats_queue_group: "q",
    live_revocation: "off (no NATS_SYSTEM_* credentials)",
    account: "APP",
    signing_key_file: "/keys/signing.nk",
    signing_key_public: keys.accountPublic,
    user_jwt_ttl: "(token lifetime)",
    jwks_url: "(apiserver /openid/v1/jwks)",
    jwt_issuer: "(discover from apiserver)",
    jwt_audience: "nats",
    k8s_in_cluster: true,
    k8s_namespace: "(all)",
    k8s_api_server_url: "https://kubernetes.default.svc",
    k8s_ca_file: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
    k8s_token_file: "/var/run/secrets/kubernetes.io/serviceaccount/token",
    k8s_watch_pods: true,
    annotation_prefix: "nats.io/",
    relist_interval: "15m",
    cache_max_staleness: "off",
  });
});

Deno.test("live revocation's system connection: off by default, on with NATS_SYSTEM_* credentials", () => {
  assert.equal(load({}).nats.system, undefined);
  assert.deepEqual(load({ NATS_SYSTEM_USER: "sys", NATS_SYSTEM_PASSWORD: "pw" }).nats.system, {
    user: "sys",
    password: "pw",
  });
  assert.deepEqual(load({ NATS_SYSTEM_TOKEN: "tok" }).nats.system, { token: "tok" });
  const creds = load({ NATS_SYSTEM_CREDS_FILE: "/etc/nats/sys.creds" });
  assert.deepEqual(creds.nats.system, { credsFile: "/etc/nats/sys.creds" });
  const shown = JSON.stringify(
    describeConfig(load({ NATS_SYSTEM_USER: "sys", NATS_SYSTEM_PASSWORD: "hunter2" })),
  );
  assert.ok(!shown.includes("hunter2"), "the system password is never shown");
  assert.match(shown, /system user sys with password/);
});

Deno.test("in-cluster apiserver address comes from KUBERNETES_SERVICE_HOST/PORT; token and CA paths can be moved", () => {
  const defaults = load({});
  assert.equal(defaults.k8s.apiServerUrl, "https://kubernetes.default.svc");
  assert.equal(defaults.k8s.tokenFile, "/var/run/secrets/kubernetes.io/serviceaccount/token");
  assert.equal(defaults.k8s.caFile, "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt");

  const pod = load({
    KUBERNETES_SERVICE_HOST: "10.96.0.1",
    KUBERNETES_SERVICE_PORT: "6443",
    K8S_TOKEN_FILE: "/var/run/secrets/nats-callout/token",
    K8S_CA_FILE: "/etc/ca/cluster.crt",
  });
  assert.equal(pod.k8s.apiServerUrl, "https://10.96.0.1:6443");
  assert.equal(pod.k8s.tokenFile, "/var/run/secrets/nats-callout/token");
  assert.equal(pod.k8s.caFile, "/etc/ca/cluster.crt");
  assert.equal(
    load({ KUBERNETES_SERVICE_HOST: "fd00::1" }).k8s.apiServerUrl,
    "https://[fd00::1]:443",
  );

  const err = problemsOf({
    KUBERNETES_SERVICE_HOST: "10.96.0.1",
    KUBERNETES_SERVICE_PORT: "https",
  });
  assert.equal(err.problems.length, 1);
  assert.match(err.problems[0]!, /^KUBERNETES_SERVICE_PORT: /);
});

Deno.test("config: a token in NATS_URL's userinfo is masked in every form, with or without a scheme (issue 10, defect 2)", () => {
  const token = "tok" + crypto.randomUUID().replaceAll("-", "");
  const config = load({
    NATS_URL: `nats://${token}@nats-a:4222,${token}@nats-b:4222,tls://svc@nats-c:4222`,
  });
  const described = describeConfig(config);
  assert.deepEqual(described.nats_servers, [
    "nats://***@nats-a:4222",
    "nats://***@nats-b:4222",
    "tls://***@nats-c:4222",
  ]);
  assert.equal(described.nats_auth, "url_userinfo");
  // Malformed entries are echoed in the problem line: never their userinfo.
  for (const entry of [`nats://${token}@bad host`, `${token} x@h:4222`, `http://${token}@h`]) {
    const err = problemsOf({ NATS_URL: entry });
    assert.ok(err.problems.some((p) => p.startsWith("NATS_URL:")), err.message);
    assert.ok(!err.message.includes(token), err.message);
  }
  const jwks = problemsOf({ JWKS_URL: `https://${token}@issuer example/keys` });
  assert.ok(!jwks.message.includes(token), jwks.message);
});

Deno.test("config: an nkey seed where a public value belongs is refused, never echoed (issue 10, defect 3)", () => {
  const fresh = freshKeys();
  const seeds = [fresh.accountSeed, fresh.userSeed, fresh.curveSeed];
  const publicVars = [
    "NATS_ACCOUNT",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "NATS_QUEUE_GROUP",
    "K8S_NAMESPACE",
    "SA_ANNOTATION_PREFIX",
    "NATS_SIGNING_KEY_FILE",
    "NATS_XKEY_SEED_FILE",
    "JWKS_PATH",
    "LOG_LEVEL",
  ];
  for (const name of publicVars) {
    for (const seed of seeds) {
      for (const value of [seed, ` ${seed}\n`, `prefix-${seed}`]) {
        const err = problemsOf({ [name]: value });
        const mine = err.problems.filter((p) => p.startsWith(`${name}:`));
        assert.equal(mine.length, 1, `${name}: ${err.message}`);
        assert.match(mine[0]!, /holds an nkey seed/);
        const logged: string[] = [];
        createLogger({ write: (l) => logged.push(l) }).error("config_invalid", {
          message: err.message,
          problems: err.problems,
        });
        for (const text of [err.message, ...logged]) {
          assert.ok(!text.includes(seed.trim()), `${name} echoes the seed: ${text}`);
          assert.ok(!text.includes(seed.slice(2, 20)), `${name} echoes part of the seed`);
        }
      }
    }
  }
  // The issue's sequence: an SA… seed pasted into NATS_ACCOUNT.
  const err = problemsOf({ NATS_ACCOUNT: fresh.accountSeed });
  assert.deepEqual(err.problems.length, 1, err.message);
  assert.match(err.problems[0]!, /^NATS_ACCOUNT: holds an nkey seed/);
  // A seed-shaped host in NATS_URL is refused too; its userinfo (a token position) is not checked.
  assert.ok(problemsOf({ NATS_URL: `nats://${fresh.userSeed}:4222` }).message.includes("NATS_URL"));
  const viaToken = load({ NATS_URL: `nats://${fresh.userSeed}@nats:4222` });
  assert.deepEqual(describeConfig(viaToken).nats_servers, ["nats://***@nats:4222"]);
  // A seed in NATS_TOKEN is a secret in a secret's place.
  assert.equal(load({ NATS_TOKEN: fresh.userSeed }).nats.token, fresh.userSeed);
  // Public keys stay fine.
  assert.equal(load({ NATS_ACCOUNT: fresh.accountPublic }).account, fresh.accountPublic);
});

Deno.test("config: K8S_WATCH_PODS turns the Pod watch off, takes Go booleans, refuses anything else", () => {
  assert.equal(load({}).k8s.watchPods, true);
  assert.equal(load({ K8S_WATCH_PODS: "false" }).k8s.watchPods, false);
  assert.equal(load({ K8S_WATCH_PODS: "0" }).k8s.watchPods, false);
  assert.equal(load({ K8S_WATCH_PODS: "True" }).k8s.watchPods, true);
  assert.throws(
    () => load({ K8S_WATCH_PODS: "no" }),
    (err: unknown) =>
      err instanceof ConfigError &&
      err.problems.includes('K8S_WATCH_PODS: "no" is not a boolean (true or false)'),
  );
  // File mode has no apiserver, so no Pod watch, whatever the variable says.
  const file = load({ SERVICEACCOUNTS_FILE: "/sa.yaml" });
  assert.equal(describeConfig(file).k8s_watch_pods, false);
});

/** A creds file whose user JWT has `claims` (unsigned: only its claims are read). */
function userCreds(claims: Record<string, unknown>): string {
  const part = new TextEncoder().encode(JSON.stringify(claims))
    .toBase64({ alphabet: "base64url", omitPadding: true });
  return credsFile(keys.userSeed).replace(/^eyJ0eXAi[^\n]*$/m, `e30.${part}.c2ln`);
}

Deno.test("config: accounts that follow namespaces need both key files, operator mode and the system connection, all named at once", () => {
  const operatorSk = dec.decode(nkeys.createOperator().getSeed());
  const auth = nkeys.createAccount().getPublicKey();
  const read = files({
    "/keys/signing.nk": keys.accountSeed,
    "/keys/operator-sk.nk": operatorSk,
    "/keys/accounts.nk": keys.accountSeed,
    "/keys/xkey.nk": keys.curveSeed,
    // The service's user, signed by one of AUTH's signing keys: AUTH is its issuer_account.
    "/keys/auth.creds": userCreds({
      iss: keys.accountPublic,
      nats: { type: "user", issuer_account: auth },
    }),
  });
  const ok = loadConfig({
    NATS_ACCOUNT: keys.accountPublic,
    NATS_SIGNING_KEY_FILE: "/keys/signing.nk",
    NATS_USER_CREDS_FILE: "/keys/auth.creds",
    NATS_SYSTEM_CREDS_FILE: "/keys/sys.creds",
    NATS_OPERATOR_SIGNING_KEY_FILE: "/keys/operator-sk.nk",
    NATS_ACCOUNTS_SEED_FILE: "/keys/accounts.nk",
  }, { readTextFile: read });
  assert.equal(ok.provisioning?.operatorSigningKeySeed, operatorSk);
  assert.equal(ok.provisioning?.authAccount, auth);
  const described = JSON.stringify(describeConfig(ok));
  assert.ok(!described.includes(operatorSk) && !described.includes(keys.accountSeed), "no seed");
  assert.ok(
    described.includes(nkeys.fromSeed(new TextEncoder().encode(operatorSk)).getPublicKey()),
  );

  let error: unknown;
  try {
    loadConfig({
      NATS_ACCOUNT: "APP",
      NATS_SIGNING_KEY_FILE: "/keys/signing.nk",
      NATS_OPERATOR_SIGNING_KEY_FILE: "/keys/xkey.nk",
    }, { readTextFile: read });
  } catch (err) {
    error = err;
  }
  assert.ok(error instanceof ConfigError);
  assert.deepEqual(error.problems, [
    "NATS_ACCOUNTS_SEED_FILE: required when the other is set (accounts that follow namespaces need both)",
    "NATS_OPERATOR_SIGNING_KEY_FILE: accounts that follow namespaces are for operator mode; NATS_ACCOUNT must then be an account public key (A...)",
    "NATS_SYSTEM_CREDS_FILE: required with NATS_OPERATOR_SIGNING_KEY_FILE (account JWTs are pushed to the resolver over a system-account connection)",
    'NATS_OPERATOR_SIGNING_KEY_FILE: "/keys/xkey.nk" holds a seed of another kind (SX..., curve (xkey)); expected an operator signing key seed (SO...)',
    'NATS_USER_CREDS_FILE: required with NATS_OPERATOR_SIGNING_KEY_FILE (the service checks that AUTH, its user\'s account, admits the provisioned accounts: allowed_accounts ["*"])',
  ]);
  assert.ok(!error.message.includes(keys.curveSeed), "the seed is never echoed");
});

Deno.test("config: accounts that follow namespaces take AUTH from the user creds: iss, or issuer_account; none is a problem", () => {
  const auth = nkeys.createAccount().getPublicKey();
  const read = files({
    "/keys/signing.nk": keys.accountSeed,
    "/keys/operator-sk.nk": dec.decode(nkeys.createOperator().getSeed()),
    "/keys/accounts.nk": keys.accountSeed,
    "/keys/direct.creds": userCreds({ iss: auth, nats: { type: "user" } }),
    "/keys/by-signing-key.creds": userCreds({
      iss: nkeys.createAccount().getPublicKey(),
      nats: { type: "user", issuer_account: auth },
    }),
    "/keys/operator-signed.creds": userCreds({ iss: nkeys.createOperator().getPublicKey() }),
  });
  const env = (creds: string) => ({
    NATS_ACCOUNT: keys.accountPublic,
    NATS_SIGNING_KEY_FILE: "/keys/signing.nk",
    NATS_USER_CREDS_FILE: creds,
    NATS_SYSTEM_CREDS_FILE: "/keys/sys.creds",
    NATS_OPERATOR_SIGNING_KEY_FILE: "/keys/operator-sk.nk",
    NATS_ACCOUNTS_SEED_FILE: "/keys/accounts.nk",
  });
  const ok = loadConfig(env("/keys/direct.creds"), { readTextFile: read });
  assert.equal(ok.provisioning?.authAccount, auth);
  const bySigningKey = loadConfig(env("/keys/by-signing-key.creds"), { readTextFile: read });
  assert.equal(bySigningKey.provisioning?.authAccount, auth, "issuer_account, not the signing key");
  assert.equal(
    (describeConfig(ok).namespace_accounts as Record<string, unknown>).auth_account,
    auth,
  );
  const problems = (creds: string) => {
    try {
      loadConfig(env(creds), { readTextFile: read });
    } catch (err) {
      return (err as ConfigError).problems;
    }
    return [];
  };
  assert.deepEqual(problems("/keys/operator-signed.creds"), [
    'NATS_USER_CREDS_FILE: "/keys/operator-signed.creds" holds no user JWT issued for an account (the service checks that AUTH, its user\'s account, admits the provisioned accounts: allowed_accounts ["*"])',
  ]);
  assert.deepEqual(problems("/keys/gone.creds"), [
    "NATS_USER_CREDS_FILE: cannot read \"/keys/gone.creds\": No such file: '/keys/gone.creds'",
  ]);
  // Named as the user set it: NATS_CREDS_FILE is the old name of the same variable.
  const { NATS_USER_CREDS_FILE: _, ...old } = env("/keys/gone.creds");
  let error: unknown;
  try {
    loadConfig({ ...old, NATS_CREDS_FILE: "/keys/gone.creds" }, { readTextFile: read });
  } catch (err) {
    error = err;
  }
  assert.ok(error instanceof ConfigError);
  assert.deepEqual(error.problems, [
    "NATS_CREDS_FILE: cannot read \"/keys/gone.creds\": No such file: '/keys/gone.creds'",
  ]);
});
