/**
 * A real single-node Kubernetes v1.37.2 cluster with running pods, for tests: etcd + kube-apiserver,
 * kube-controller-manager, kube-scheduler, kubelet, kube-proxy (iptables) and CoreDNS, with
 * Debian's containerd 1.6 and runc, and the CNI bridge plugin. Every component is the real one
 * (tools/kubernetes, tools/coredns); images come from local OCI archives (images.ts), never a
 * registry.
 *
 * Isolation: each cluster lives in a network namespace of its own (entered with `nsenter --net`,
 * not `ip netns exec`, which remounts /sys and hides the cgroup mounts). Inside: `lo`, a port-less
 * bridge `node0` holding the node IP 10.255.0.1 (this kernel has no `dummy` device) as the default
 * route, the CNI bridge for pods (10.244.0.0/24) and kube-proxy's rules for Services
 * (10.96.0.0/24). Nothing can leave it; fixed ports never clash between clusters. The host reaches
 * an address inside only through {@linkcode KubeCluster.relay} (tools/netns-relay), and host
 * commands run inside with {@linkcode KubeCluster.run}.
 *
 * Every process a cluster starts lands in its control cgroup (`<id>-nkoc-ctl`, containerd's shims
 * too); pods run under the kubelet's `cgroupRoot` `/<id>`. Disposal kills exactly those, unmounts
 * what lies under the cluster's directory, deletes the namespace and the cgroups, removes the
 * kubelet's log links and restores the sysctls it changed (host.ts): the host is left as it was.
 *
 * The facts behind the settings (cgroup v1 `failCgroupV1: false`, containerd's
 * `restrict_oom_score_adj` without CAP_SYS_RESOURCE, the sysctls) were found on this kind of machine
 * and are kept in the shared kube-cluster recipe.
 *
 * @module
 */
import { buildImage, type ImageSpec } from "./oci_image.ts";
import { corednsImage, pauseImage, toolBinary } from "./images.ts";
import {
  cgroupHierarchies,
  CONTROL_CGROUP_SUFFIX,
  findCommand,
  forgetCluster,
  orphanedClusters,
  recordCluster,
  restoreHostState,
  saveHostState,
} from "./host.ts";
import { waitFor } from "../wait.ts";

/** The node's address inside the cluster's network namespace. */
export const NODE_IP = "10.255.0.1";
const POD_CIDR = "10.244.0.0/24";
const SERVICE_CIDR = "10.96.0.0/24";
const API_SERVICE_IP = "10.96.0.1";
const DNS_IP = "10.96.0.10";
/** The issuer of the cluster's ServiceAccount tokens (kubeadm's and k3s's). */
export const ISSUER = "https://kubernetes.default.svc.cluster.local";

/** Options of {@linkcode KubeCluster.start}. */
export interface ClusterOptions {
  /** Images to import besides the pause and CoreDNS images. */
  images?: readonly ImageSpec[];
  /** Name prefix of the network namespace and cgroups. @default {"nkoc"} */
  prefix?: string;
}

/** Options of {@linkcode KubeCluster.run}. */
export interface RunOptions {
  /** Text on stdin. */
  stdin?: string;
  /** Extra environment (the host's is passed through, plus `KUBECONFIG`). */
  env?: Record<string, string>;
  /** Working directory. */
  cwd?: string;
  /** Return the result instead of throwing on a non-zero exit. */
  allowFailure?: boolean;
}

/** What a command run by {@linkcode KubeCluster.run} printed. */
export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

interface Component {
  readonly name: string;
  readonly child: Deno.ChildProcess;
}

function randomId(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(3));
  return `${prefix}${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

async function exec(cmd: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const child = new Deno.Command(cmd, {
    args,
    ...(options.cwd ? { cwd: options.cwd } : {}),
    ...(options.env ? { env: options.env } : {}),
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(options.stdin));
    await w.close();
  }
  const out = await child.output();
  const result = {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
  if (out.code !== 0 && !options.allowFailure) {
    throw new Error(
      `${[cmd, ...args].join(" ")} exited ${out.code}\n${result.stderr}${result.stdout}`,
    );
  }
  return result;
}

function alive(pid: number): boolean {
  try {
    return !/^State:\s*Z/m.test(Deno.readTextFileSync(`/proc/${pid}/status`));
  } catch {
    return false;
  }
}

async function killAndWait(pids: readonly number[]): Promise<void> {
  for (const pid of pids) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* gone */ }
  }
  for (let i = 0; i < 50 && pids.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
}

/** Every process in a cgroup (pids hierarchy) and its descendants. */
function cgroupPids(name: string): number[] {
  const pids = new Set<number>();
  const walk = (dir: string) => {
    try {
      for (const line of Deno.readTextFileSync(`${dir}/cgroup.procs`).split("\n")) {
        if (line) pids.add(Number(line));
      }
      for (const entry of Deno.readDirSync(dir)) {
        if (entry.isDirectory) walk(`${dir}/${entry.name}`);
      }
    } catch { /* gone */ }
  };
  walk(`/sys/fs/cgroup/pids/${name}`);
  return [...pids];
}

/** A running cluster; `await using` it so it is always torn down. */
export class KubeCluster implements AsyncDisposable {
  /** The network namespace's name (also the cgroup and directory names). */
  readonly id: string;
  /** The cluster's files: PKI, configs, logs, containerd and kubelet state. */
  readonly runDir: string;
  /** The multi-call Kubernetes binary (tools/kubernetes). */
  readonly binary: string;
  /** The admin kubeconfig (`system:masters`), valid inside the namespace. */
  readonly kubeconfig: string;
  readonly #components: Component[] = [];
  readonly #processes: Deno.ChildProcess[] = [];
  #disposed = false;

  private constructor(id: string, runDir: string, binary: string) {
    this.id = id;
    this.runDir = runDir;
    this.binary = binary;
    this.kubeconfig = `${runDir}/admin.kubeconfig`;
  }

  /** The network namespace as a path for `nsenter --net=`. */
  get netnsPath(): string {
    return `/run/netns/${this.id}`;
  }

  /**
   * Start a cluster and wait until its node is Ready, the controller-manager works (the `default`
   * ServiceAccount exists) and CoreDNS answers. A failure tears down what was started.
   */
  static async start(options: ClusterOptions = {}): Promise<KubeCluster> {
    const binary = await toolBinary("kubernetes");
    // A cluster whose test process died (a CI timeout, SIGKILL) is torn down by the next one.
    for (const orphan of orphanedClusters()) {
      await KubeCluster.reap(orphan.id, orphan.runDir, binary);
    }
    const id = randomId(options.prefix ?? "nkoc");
    const runDir = await Deno.makeTempDir({ prefix: `${id}-` });
    recordCluster({ id, runDir, owner: Deno.pid });
    const cluster = new KubeCluster(id, runDir, binary);
    try {
      await cluster.#start(options);
      return cluster;
    } catch (err) {
      const logs = await cluster.#logTails().catch(() => "");
      await cluster[Symbol.asyncDispose]();
      throw new Error(`test cluster did not start: ${(err as Error).message}\n${logs}`, {
        cause: err,
      });
    }
  }

  /**
   * Tear down a cluster this process did not start (its owner died, or it is named by hand with
   * tests/support/cluster/reap.ts): every process in its cgroups, its mounts, namespace, cgroups,
   * and the host state, as {@linkcode KubeCluster[Symbol.asyncDispose]} does.
   */
  static async reap(id: string, runDir: string, binary: string): Promise<void> {
    await new KubeCluster(id, runDir, binary)[Symbol.asyncDispose]();
  }

  async #start(options: ClusterOptions): Promise<void> {
    const imagesReady = Promise.all(
      [await pauseImage(), await corednsImage(), ...options.images ?? []].map(buildImage),
    );
    this.#createCgroups();
    await this.#createNetns();
    await this.#writePki();
    await this.#writeConfigs();
    this.#spawn("containerd", findCommand("containerd")!, [
      "--config",
      `${this.runDir}/containerd.toml`,
    ]);
    this.#spawn("kube-apiserver", this.binary, this.#apiserverArgs());
    await waitFor(() => this.#ctr(["version"]).then(() => true), {
      timeoutMs: 30_000,
      intervalMs: 100,
      what: "containerd",
    });
    for (const archive of await imagesReady) await this.importArchive(archive);
    await waitFor(
      () => this.kubectl(["get", "--raw=/readyz"]).then(() => true),
      { timeoutMs: 90_000, intervalMs: 100, what: "kube-apiserver /readyz" },
    );
    this.#spawn("kube-controller-manager", this.binary, this.#controllerManagerArgs());
    this.#spawn("kube-scheduler", this.binary, [
      "kube-scheduler",
      `--kubeconfig=${this.runDir}/scheduler.kubeconfig`,
      "--bind-address=127.0.0.1",
      "--secure-port=10259",
      "--leader-elect=false",
      "--profiling=false",
      "--v=1",
    ]);
    saveHostState();
    this.#spawn("kubelet", this.binary, [
      "kubelet",
      `--config=${this.runDir}/kubelet.yaml`,
      `--kubeconfig=${this.runDir}/kubelet.kubeconfig`,
      `--root-dir=${this.runDir}/kubelet`,
      `--cert-dir=${this.runDir}/kubelet/pki`,
      `--hostname-override=${this.id}`,
      `--node-ip=${NODE_IP}`,
      "--v=1",
    ]);
    this.#spawn("kube-proxy", this.binary, [
      "kube-proxy",
      `--config=${this.runDir}/kube-proxy.yaml`,
      "--v=1",
    ]);
    await waitFor(
      () =>
        this.kubectl(["wait", "--for=condition=Ready", `node/${this.id}`, "--timeout=1s"])
          .then(() => true),
      { timeoutMs: 90_000, intervalMs: 200, what: "node Ready" },
    );
    await waitFor(
      () => this.kubectl(["-n", "default", "get", "serviceaccount", "default"]).then(() => true),
      { timeoutMs: 60_000, intervalMs: 200, what: "the default ServiceAccount" },
    );
    await this.apply(COREDNS_MANIFEST);
    await this.kubectl([
      "-n",
      "kube-system",
      "rollout",
      "status",
      "deploy/coredns",
      "--timeout=60s",
    ]);
  }

  /** Import an OCI archive into the cluster's containerd (namespace `k8s.io`). */
  async importArchive(archive: string): Promise<void> {
    await this.#ctr(["images", "import", archive]);
  }

  /** Build `spec` (cached) and import it. */
  async importImage(spec: ImageSpec): Promise<void> {
    await this.importArchive(await buildImage(spec));
  }

  /** Run a host command inside the cluster's network namespace, with `KUBECONFIG` set. */
  async run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return await exec("nsenter", [`--net=${this.netnsPath}`, "--", cmd, ...args], {
      ...options,
      env: { ...Deno.env.toObject(), KUBECONFIG: this.kubeconfig, ...options.env },
    });
  }

  /**
   * Start a long-running host command inside the namespace (a client that must outlive one call),
   * stdout and stderr piped; killed with the cluster if still running.
   */
  spawn(cmd: string, args: readonly string[], env: Record<string, string> = {}): Deno.ChildProcess {
    const child = new Deno.Command("nsenter", {
      args: [`--net=${this.netnsPath}`, "--", cmd, ...args],
      env: { ...Deno.env.toObject(), KUBECONFIG: this.kubeconfig, ...env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#processes.push(child);
    return child;
  }

  /** `kubectl <args>` as the cluster admin; its stdout. */
  async kubectl(args: readonly string[], options: RunOptions = {}): Promise<string> {
    return (await this.run(
      this.binary,
      ["kubectl", `--kubeconfig=${this.kubeconfig}`, ...args],
      options,
    ))
      .stdout;
  }

  /** `kubectl apply -f -` of a YAML text. */
  async apply(yaml: string): Promise<void> {
    await this.kubectl(["apply", "-f", "-"], { stdin: yaml });
  }

  /**
   * A host address (`127.0.0.1:<port>`) that reaches `address` (`host:port`) inside the cluster's
   * network namespace — a Service's ClusterIP, a pod IP or the node IP. Closed with the cluster.
   */
  async relay(address: string): Promise<string> {
    const relay = await toolBinary("netns-relay");
    const child = new Deno.Command(relay, {
      args: ["-", "127.0.0.1:0", this.netnsPath, address],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#processes.push(child);
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`netns-relay to ${address} exited`);
      text += value;
    }
    reader.releaseLock();
    return text.trim();
  }

  /** The last lines of each component's log, for a failure message. */
  async #logTails(lines = 15): Promise<string> {
    const out: string[] = [];
    for await (const entry of Deno.readDir(`${this.runDir}/logs`)) {
      const text = await Deno.readTextFile(`${this.runDir}/logs/${entry.name}`);
      out.push(`--- ${entry.name}\n${text.trimEnd().split("\n").slice(-lines).join("\n")}`);
    }
    return out.join("\n");
  }

  /** A component's log (`kubelet`, `kube-apiserver`, `containerd`, …). */
  async componentLog(name: string): Promise<string> {
    return await Deno.readTextFile(`${this.runDir}/logs/${name}.log`);
  }

  async #ctr(args: string[]): Promise<RunResult> {
    return await exec("ctr", [
      "--address",
      `${this.runDir}/containerd/containerd.sock`,
      "-n",
      "k8s.io",
      ...args,
    ]);
  }

  get #controlCgroup(): string {
    return `${this.id}${CONTROL_CGROUP_SUFFIX}`;
  }

  #createCgroups(): void {
    for (const h of cgroupHierarchies()) {
      for (const name of [this.#controlCgroup, this.id]) {
        Deno.mkdirSync(`${h}/${name}`, { recursive: true });
        if (h.endsWith("/cpuset")) {
          for (const file of ["cpuset.cpus", "cpuset.mems"]) {
            Deno.writeTextFileSync(`${h}/${name}/${file}`, Deno.readTextFileSync(`${h}/${file}`));
          }
        }
      }
    }
  }

  /**
   * Start a component inside the namespace, in the control cgroup from its first instruction (a
   * shell moves itself there, then execs), its output in `logs/<name>.log`.
   */
  #spawn(name: string, cmd: string, args: readonly string[]): void {
    const procs = cgroupHierarchies().map((h) => `${h}/${this.#controlCgroup}/cgroup.procs`);
    const script = `for f in ${procs.join(" ")}; do echo $$ > "$f"; done\n` +
      `exec nsenter --net="${this.netnsPath}" -- "$@" > "${this.runDir}/logs/${name}.log" 2>&1`;
    const child = new Deno.Command("sh", {
      args: ["-c", script, name, cmd, ...args],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    this.#components.push({ name, child });
  }

  async #createNetns(): Promise<void> {
    await exec("ip", ["netns", "add", this.id]);
    const inNs = (args: string[]) => this.run(args[0]!, args.slice(1));
    await inNs(["ip", "link", "set", "lo", "up"]);
    await inNs(["ip", "link", "add", "node0", "type", "bridge"]);
    await inNs(["ip", "addr", "add", `${NODE_IP}/32`, "dev", "node0"]);
    await inNs(["ip", "link", "set", "node0", "up"]);
    await inNs(["ip", "route", "add", "default", "dev", "node0"]);
    await inNs(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    await this.run("sysctl", ["-qw", "net.bridge.bridge-nf-call-iptables=1"], {
      allowFailure: true,
    });
  }

  async #writePki(): Promise<void> {
    const pki = `${this.runDir}/pki`;
    await Deno.mkdir(pki, { recursive: true });
    const ssl = (args: string[]) => exec("openssl", args, { cwd: pki });
    const ec = (name: string, subject: string) =>
      ssl([
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        `${name}.key`,
        "-out",
        `${name}.csr`,
        "-subj",
        subject,
      ]);
    const issue = async (name: string, subject: string, ext: string) => {
      await ec(name, subject);
      await Deno.writeTextFile(`${pki}/${name}.ext`, ext);
      await ssl([
        "x509",
        "-req",
        "-in",
        `${name}.csr`,
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        `${name}.crt`,
        "-days",
        "3",
        "-extfile",
        `${name}.ext`,
      ]);
    };
    await ec("ca", `/CN=${this.id}-ca`);
    await Deno.writeTextFile(
      `${pki}/ca.ext`,
      "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
    );
    await ssl([
      "x509",
      "-req",
      "-in",
      "ca.csr",
      "-signkey",
      "ca.key",
      "-out",
      "ca.crt",
      "-days",
      "3",
      "-extfile",
      "ca.ext",
    ]);
    await issue(
      "apiserver",
      "/CN=kube-apiserver",
      `subjectAltName=IP:127.0.0.1,IP:${NODE_IP},IP:${API_SERVICE_IP},DNS:localhost,DNS:kubernetes,` +
        "DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n" +
        "extendedKeyUsage=serverAuth\n",
    );
    await issue(
      "kubelet",
      `/CN=${this.id}`,
      `subjectAltName=IP:${NODE_IP},DNS:${this.id}\nextendedKeyUsage=serverAuth\n`,
    );
    await issue(
      "apiserver-kubelet-client",
      "/O=system:masters/CN=kube-apiserver-kubelet-client",
      "extendedKeyUsage=clientAuth\n",
    );
    await ssl(["genrsa", "-out", "sa.key", "2048"]);
    await ssl(["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
    const token = () =>
      Array.from(crypto.getRandomValues(new Uint8Array(24)), (b) => b.toString(16).padStart(2, "0"))
        .join("");
    const users = {
      admin: [token(), "admin", "admin", '"system:masters"'],
      kcm: [token(), "system:kube-controller-manager", "kcm"],
      scheduler: [token(), "system:kube-scheduler", "scheduler"],
      kubelet: [token(), `system:node:${this.id}`, `node-${this.id}`, '"system:nodes"'],
      "kube-proxy": [token(), "system:kube-proxy", "kube-proxy"],
    };
    await Deno.writeTextFile(
      `${pki}/tokens.csv`,
      Object.values(users).map((u) => u.join(",")).join("\n") + "\n",
    );
    for (const [name, user] of Object.entries(users)) {
      await Deno.writeTextFile(
        `${this.runDir}/${name}.kubeconfig`,
        [
          "apiVersion: v1",
          "kind: Config",
          "current-context: c",
          "contexts: [{name: c, context: {cluster: c, user: u}}]",
          `clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443", certificate-authority: "${pki}/ca.crt"}}]`,
          `users: [{name: u, user: {token: "${user[0]}"}}]`,
          "",
        ].join("\n"),
      );
    }
  }

  async #writeConfigs(): Promise<void> {
    const run = this.runDir;
    for (const dir of ["logs", "cni/net.d", "cni/ipam", "containerd", "kubelet", "pod-logs"]) {
      await Deno.mkdir(`${run}/${dir}`, { recursive: true });
    }
    await Deno.writeTextFile(`${run}/containerd.toml`, containerdConfig(run, findCommand("runc")!));
    await Deno.writeTextFile(`${run}/cni/net.d/10-pods.conflist`, cniConfig(run, this.id));
    await Deno.writeTextFile(`${run}/kubelet.yaml`, kubeletConfig(run, this.id));
    await Deno.writeTextFile(`${run}/kube-proxy.yaml`, kubeProxyConfig(run, this.id));
    await Deno.writeTextFile(`${run}/resolv.conf`, "nameserver 127.0.0.1\n");
  }

  #apiserverArgs(): string[] {
    const run = this.runDir;
    const pki = `${run}/pki`;
    return [
      `--embedded-etcd-dir=${run}/etcd`,
      "--embedded-etcd-port=2379",
      "--embedded-etcd-peer-port=2380",
      "--",
      "--etcd-servers=http://127.0.0.1:2379",
      "--bind-address=0.0.0.0",
      `--advertise-address=${NODE_IP}`,
      "--secure-port=6443",
      `--cert-dir=${pki}/gen`,
      `--tls-cert-file=${pki}/apiserver.crt`,
      `--tls-private-key-file=${pki}/apiserver.key`,
      `--client-ca-file=${pki}/ca.crt`,
      `--service-account-issuer=${ISSUER}`,
      `--service-account-key-file=${pki}/sa.pub`,
      `--service-account-signing-key-file=${pki}/sa.key`,
      `--token-auth-file=${pki}/tokens.csv`,
      "--authorization-mode=Node,RBAC",
      "--enable-admission-plugins=NodeRestriction",
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      "--allow-privileged=true",
      `--kubelet-client-certificate=${pki}/apiserver-kubelet-client.crt`,
      `--kubelet-client-key=${pki}/apiserver-kubelet-client.key`,
      "--kubelet-preferred-address-types=InternalIP",
      "--enable-priority-and-fairness=false",
      "--profiling=false",
      "--v=1",
    ];
  }

  #controllerManagerArgs(): string[] {
    const run = this.runDir;
    return [
      "kube-controller-manager",
      `--kubeconfig=${run}/kcm.kubeconfig`,
      "--bind-address=127.0.0.1",
      "--secure-port=10257",
      "--leader-elect=false",
      "--use-service-account-credentials=true",
      `--service-account-private-key-file=${run}/pki/sa.key`,
      `--root-ca-file=${run}/pki/ca.crt`,
      `--cluster-signing-cert-file=${run}/pki/ca.crt`,
      `--cluster-signing-key-file=${run}/pki/ca.key`,
      `--cluster-name=${this.id}`,
      "--kube-api-qps=200",
      "--kube-api-burst=400",
      "--profiling=false",
      "--v=1",
    ];
  }

  /**
   * Tear down (see the module doc): kubelet first (so nothing restarts), the control plane, the
   * pods, containerd and its shims; then mounts, the namespace, cgroups and host state. Set
   * `NKOC_CLUSTER_KEEP=1` to keep the cluster's directory (logs) for a look afterwards.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const child of this.#processes) {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await child.status;
      for (const stream of [child.stdout, child.stderr]) {
        await stream.cancel().catch(() => {});
      }
    }
    const pidOf = (name: string) =>
      this.#components.filter((c) => c.name === name).map((c) => c.child.pid);
    // An orphan (its owner died): no handles, so stop everything it started at once first.
    if (this.#components.length === 0) await killAndWait(cgroupPids(this.#controlCgroup));
    await killAndWait(pidOf("kubelet"));
    await killAndWait(
      this.#components.filter((c) => c.name !== "containerd" && c.name !== "kubelet").map((c) =>
        c.child.pid
      ),
    );
    await killAndWait(cgroupPids(this.id));
    await killAndWait(pidOf("containerd"));
    await killAndWait(cgroupPids(this.#controlCgroup));
    await Promise.all(this.#components.map((c) => c.child.status));
    const mounts = Deno.readTextFileSync("/proc/self/mounts").split("\n")
      .map((line) => line.split(" ")[1] ?? "")
      .filter((m) => m.startsWith(`${this.runDir}/`))
      .sort().reverse();
    for (const m of mounts) await exec("umount", ["-l", m], { allowFailure: true });
    await exec("ip", ["netns", "delete", this.id], { allowFailure: true });
    await this.#removeCgroups();
    restoreHostState(this.runDir);
    if (Deno.env.get("NKOC_CLUSTER_KEEP") !== "1") {
      await Deno.remove(this.runDir, { recursive: true }).catch(() => {});
    }
    forgetCluster(this.id);
  }

  async #removeCgroups(): Promise<void> {
    const removeTree = (dir: string) => {
      try {
        for (const entry of Deno.readDirSync(dir)) {
          if (entry.isDirectory) removeTree(`${dir}/${entry.name}`);
        }
        Deno.removeSync(dir);
      } catch { /* busy or gone: retried */ }
    };
    for (let i = 0; i < 30; i++) {
      let left = false;
      // Every hierarchy, cgroup2 "unified" too: runc (hybrid mode) mirrors pod cgroups there.
      for (const h of [...cgroupHierarchies(), "/sys/fs/cgroup/unified"]) {
        for (const name of [this.id, this.#controlCgroup]) {
          removeTree(`${h}/${name}`);
          try {
            Deno.statSync(`${h}/${name}`);
            left = true;
          } catch { /* removed */ }
        }
      }
      if (!left) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function containerdConfig(run: string, runc: string): string {
  return `# containerd 1.6 (Debian): private root/state/socket, CRI with runc (cgroupfs), local images.
version = 2
root = "${run}/containerd/root"
state = "${run}/containerd/state"
oom_score = 0
[grpc]
  address = "${run}/containerd/containerd.sock"
[ttrpc]
  address = "${run}/containerd/containerd.sock.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "${run}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:local"
  # No CAP_SYS_RESOURCE here: never ask runc to lower oom_score_adj below containerd's own (0).
  restrict_oom_score_adj = true
  # Pod netns bind mounts under the state dir, not the shared /var/run/netns.
  netns_mounts_under_state_dir = true
  enable_selinux = false
  disable_apparmor = true
  max_container_log_line_size = 16384
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    discard_unpacked_layers = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "${runc}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${run}/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ""
`;
}

function cniConfig(run: string, id: string): string {
  return JSON.stringify(
    {
      cniVersion: "1.0.0",
      name: id,
      plugins: [{
        type: "bridge",
        bridge: "pods0",
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: "host-local",
          ranges: [[{ subnet: POD_CIDR }]],
          routes: [{ dst: "0.0.0.0/0" }],
          dataDir: `${run}/cni/ipam`,
        },
      }],
    },
    null,
    2,
  );
}

function kubeletConfig(run: string, id: string): string {
  return `# KubeletConfiguration for kubelet v1.37.2 on a cgroup v1 host without CAP_SYS_RESOURCE.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false            # 1.35+ refuses cgroup v1 unless this is false (v1 still works in 1.37)
cgroupDriver: cgroupfs         # containerd 1.6 has no RuntimeConfig RPC; the kubelet falls back to this
cgroupRoot: "/${id}"           # per-cluster cgroup parent: /<id>/kubepods/...
cgroupsPerQOS: true
enforceNodeAllocatable: ["pods"]
failSwapOn: false
containerRuntimeEndpoint: "unix://${run}/containerd/containerd.sock"
imageServiceEndpoint: "unix://${run}/containerd/containerd.sock"
address: "${NODE_IP}"
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: false }
  x509: { clientCAFile: "${run}/pki/ca.crt" }
authorization:
  mode: AlwaysAllow
clusterDNS: ["${DNS_IP}"]
clusterDomain: cluster.local
resolvConf: "${run}/resolv.conf"
podLogsDir: "${run}/pod-logs"
tlsCertFile: "${run}/pki/kubelet.crt"
tlsPrivateKeyFile: "${run}/pki/kubelet.key"
rotateCertificates: false
serverTLSBootstrap: false
registerNode: true
protectKernelDefaults: false
# Tests: react fast, never evict for disk on a shared dev disk.
evictionHard: { memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%" }
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
nodeStatusUpdateFrequency: 10s
syncFrequency: 10s
fileCheckFrequency: 10s
serializeImagePulls: false
maxPods: 50
`;
}

function kubeProxyConfig(run: string, id: string): string {
  return `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: { kubeconfig: "${run}/kube-proxy.kubeconfig" }
hostnameOverride: "${id}"
clusterCIDR: "${POD_CIDR}"
bindAddress: 0.0.0.0
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack: { maxPerCore: 0 }
iptables: { syncPeriod: 5s, minSyncPeriod: 0s, masqueradeAll: false }
`;
}

/** CoreDNS for Service names (`nats.nats.svc.cluster.local`), as kube-dns at 10.96.0.10. */
const COREDNS_MANIFEST = `apiVersion: v1
kind: ServiceAccount
metadata: { name: coredns, namespace: kube-system }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: { name: "system:coredns" }
rules:
  - apiGroups: [""]
    resources: [endpoints, services, pods, namespaces]
    verbs: [list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: "system:coredns" }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns" }
subjects: [{ kind: ServiceAccount, name: coredns, namespace: kube-system }]
---
apiVersion: v1
kind: ConfigMap
metadata: { name: coredns, namespace: kube-system }
data:
  Corefile: |
    .:53 {
        errors
        health
        ready
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 5
        }
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: coredns, namespace: kube-system, labels: { k8s-app: kube-dns } }
spec:
  replicas: 1
  selector: { matchLabels: { k8s-app: kube-dns } }
  template:
    metadata: { labels: { k8s-app: kube-dns } }
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      priorityClassName: system-cluster-critical
      terminationGracePeriodSeconds: 1
      containers:
        - name: coredns
          image: localhost/coredns:local
          imagePullPolicy: Never
          args: ["-conf", "/etc/coredns/Corefile"]
          ports:
            - { name: dns, containerPort: 53, protocol: UDP }
            - { name: dns-tcp, containerPort: 53, protocol: TCP }
          readinessProbe: { httpGet: { path: /ready, port: 8181 }, periodSeconds: 1 }
          volumeMounts: [{ name: config, mountPath: /etc/coredns, readOnly: true }]
      volumes:
        - name: config
          configMap: { name: coredns, items: [{ key: Corefile, path: Corefile }] }
---
apiVersion: v1
kind: Service
metadata: { name: kube-dns, namespace: kube-system, labels: { k8s-app: kube-dns } }
spec:
  selector: { k8s-app: kube-dns }
  clusterIP: ${DNS_IP}
  ports:
    - { name: dns, port: 53, protocol: UDP, targetPort: 53 }
    - { name: dns-tcp, port: 53, protocol: TCP, targetPort: 53 }
`;
