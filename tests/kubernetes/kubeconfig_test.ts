import assert from "node:assert/strict";
import {
  KubeconfigError,
  kubeconfigPaths,
  selectKubeconfig,
} from "../../lib/kubernetes/kubeconfig.ts";

const CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

function sel(text: string, path = "/home/me/.kube/config") {
  return selectKubeconfig([{ path, text }]);
}

Deno.test("kubeconfig: a kubectl proxy context (plain http, no user credentials) is accepted", () => {
  const s = sel(`
apiVersion: v1
kind: Config
current-context: proxy
contexts: [{name: proxy, context: {cluster: local}}]
clusters: [{name: local, cluster: {server: "http://127.0.0.1:8001/"}}]
`);
  assert.equal(s.server, "http://127.0.0.1:8001");
  assert.equal(s.ca, undefined);
  assert.equal(s.token, undefined);
  assert.equal(s.plugin, undefined);
});

Deno.test("kubeconfig: CA data, token, client certificate and relative files resolve like kubectl", () => {
  const s = sel(`
current-context: c
contexts:
- name: c
  context: {cluster: k, user: u}
clusters:
- name: k
  cluster:
    server: https://10.0.0.1:6443
    certificate-authority-data: ${btoa(CA)}
users:
- name: u
  user:
    token: abc
    tokenFile: tokens/t
    client-certificate: certs/c.crt
    client-key: /abs/c.key
    as: someone
    as-groups: [g1, g2]
`);
  assert.equal(s.server, "https://10.0.0.1:6443");
  assert.deepEqual(s.ca, { pem: CA });
  assert.equal(s.token, "abc");
  assert.equal(s.tokenFile, "/home/me/.kube/tokens/t");
  assert.deepEqual(s.clientCert, { file: "/home/me/.kube/certs/c.crt" });
  assert.deepEqual(s.clientKey, { file: "/abs/c.key" });
  assert.deepEqual(s.impersonate, { user: "someone", groups: ["g1", "g2"] });
});

Deno.test("kubeconfig: files merge as KUBECONFIG lists them, the first definition winning", () => {
  const s = selectKubeconfig([
    {
      path: "/a/config",
      text: `
current-context: second
clusters: [{name: k, cluster: {server: "https://first.example"}}]
`,
    },
    {
      path: "/b/config",
      text: `
current-context: ignored
contexts: [{name: second, context: {cluster: k, user: u}}]
clusters: [{name: k, cluster: {server: "https://second.example"}}]
users: [{name: u, user: {exec: {command: aws}}}]
`,
    },
  ]);
  assert.equal(s.context, "second");
  assert.equal(s.server, "https://first.example");
  assert.equal(s.plugin, "exec");
});

Deno.test("kubeconfig: an unusable file fails naming the file and the field", () => {
  const cases: [string, RegExp][] = [
    ["current-context: x\n", /no current-context|"x" is not defined/],
    [": : :", /not YAML/],
    [
      `current-context: c
contexts: [{name: c, context: {cluster: k}}]
clusters: [{name: k, cluster: {server: "ftp://h"}}]`,
      /cluster "k": server must be an http:\/\/ or https:\/\/ URL/,
    ],
    [
      `current-context: c
contexts: [{name: c, context: {cluster: k, user: u}}]
clusters: [{name: k, cluster: {server: "https://h"}}]
users: [{name: u, user: {client-certificate-data: ${btoa(CA)}}}]`,
      /user "u": a client certificate needs its key/,
    ],
    [
      `current-context: c
contexts: [{name: c, context: {cluster: k}}]
clusters: [{name: k, cluster: {server: "https://h", certificate-authority-data: "bm90IHBlbQ=="}}]`,
      /certificate-authority-data holds no PEM block/,
    ],
  ];
  for (const [text, pattern] of cases) {
    const err = (() => {
      try {
        sel(text, "/cfg");
      } catch (e) {
        return e;
      }
      throw new Error(`accepted: ${text}`);
    })();
    assert.ok(err instanceof KubeconfigError, String(err));
    assert.match((err as Error).message, pattern);
    assert.match((err as Error).message, /\/cfg/);
  }
});

Deno.test("kubeconfig: KUBECONFIG lists are split like kubectl's; HOME gives the default", () => {
  assert.deepEqual(kubeconfigPaths("/a::/b", "/root"), ["/a", "/b"]);
  assert.deepEqual(kubeconfigPaths(undefined, "/root"), ["/root/.kube/config"]);
  assert.deepEqual(kubeconfigPaths("", "/root"), ["/root/.kube/config"]);
});
