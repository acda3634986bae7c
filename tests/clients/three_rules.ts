/**
 * The three client rules of docs/client-usage.md, proved for one example program against the real
 * parts: kube-apiserver (tokens from its TokenRequest API, bound to a Pod, as the kubelet gets them),
 * nats-server with the auth callout, and the service in-cluster (tests/support/kube_stack.ts).
 *
 * The workload `team-a/orders` runs the example with `NATS_TOKEN_FILE` pointing at a file that a
 * kubelet stand-in rewrites every second. The apiserver will not mint a token shorter than 600 s,
 * so each one it mints is re-issued with a 4 s life (iat/nbf/exp and jti changed, everything else
 * kept) and signed with the apiserver's own ServiceAccount signing key: the service verifies it
 * through the apiserver's JWKS like any other. The user JWT lives as long as the token, so the
 * server cuts the connection every few seconds (`User Authentication Expired`), and a token that was
 * rotated out of the file is refused for good 4 s later — what happens to a real workload after an
 * hour, in seconds.
 *
 * {@linkcode proveThreeRules} then checks what a user would notice:
 * - rule 3: a request the example sends carries a reply subject in `_INBOX_team-a_orders.` (another
 *   workload of the namespace sees the request, and where its reply goes);
 * - rule 1: replies keep coming after two user-JWT expiries, while the first token, rotated out of
 *   the file, is refused;
 * - rule 2: the ServiceAccount is deleted; the example's reconnects are refused (three times in a
 *   row: clients that give up do so after the same error twice); it is recreated, the kubelet
 *   stand-in writes a token for the new one, and replies come again;
 * - and SIGTERM stops it cleanly ("stopped", the expected exit status).
 *
 * @module
 */
import assert from "node:assert/strict";
import { createPrivateKey, type KeyObject, sign } from "node:crypto";
import { Buffer } from "node:buffer";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { KubeStack } from "../support/kube_stack.ts";
import { waitFor } from "../support/wait.ts";

/** The workload every client test runs as. */
export const NAMESPACE = "team-a";
/** Its ServiceAccount. */
export const SERVICE_ACCOUNT = "orders";
/** Its private inbox prefix (docs/client-usage.md §4). */
export const PRIVATE_INBOX = "_INBOX_team-a_orders";
/** How long each token in the file lives, in seconds. */
export const TOKEN_LIFETIME_S = 4;

const POD = "orders-0";

/** How to run one example program. */
export interface ClientProgram {
  /** Executable. */
  command: string;
  /** Its arguments. */
  args: string[];
  /** Working directory. @default {the repository root} */
  cwd?: string;
  /** Exit statuses that count as a clean stop after SIGTERM. @default {[0]} */
  exitCodes?: number[];
}

/** Text lines of a child's stream, as they arrive. */
export interface Lines {
  readonly lines: string[];
  readonly done: Promise<void>;
  text(): string;
}

/** Collect a stream's lines as they arrive. */
export function collectLines(stream: ReadableStream<Uint8Array>): Lines {
  const lines: string[] = [];
  let partial = "";
  const done = stream.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({
      write(chunk) {
        const parts = (partial + chunk).split("\n");
        partial = parts.pop() ?? "";
        lines.push(...parts);
      },
      close() {
        if (partial) lines.push(partial);
      },
    }),
  );
  return { lines, done, text: () => lines.join("\n") };
}

function base64url(data: string | Uint8Array): string {
  return Buffer.from(data).toString("base64url");
}

/** A token from the TokenRequest API, bound to the Pod, re-issued to live TOKEN_LIFETIME_S. */
async function mintToken(stack: KubeStack, key: KeyObject, podUid: string): Promise<string> {
  const real = await stack.kube.token(NAMESPACE, SERVICE_ACCOUNT, {
    audiences: ["nats"],
    expirationSeconds: 600,
    pod: { name: POD, uid: podUid },
  });
  const [header, payload] = real.split(".");
  const claims = JSON.parse(Buffer.from(payload!, "base64url").toString());
  const now = Math.floor(Date.now() / 1000);
  const body = base64url(JSON.stringify({
    ...claims,
    iat: now,
    nbf: now,
    exp: now + TOKEN_LIFETIME_S,
    jti: crypto.randomUUID(),
  }));
  const signature = sign("RSA-SHA256", Buffer.from(`${header}.${body}`), key);
  return `${header}.${body}.${base64url(signature)}`;
}

/**
 * The real stack with the workload's objects, a rotating token file, another workload watching
 * `team-a.echo`, and the system account watching disconnect advisories.
 */
export class ClientRig implements AsyncDisposable {
  readonly stack: KubeStack;
  /** The token file the example reads. */
  readonly tokenFile: string;
  /** The first token written to the file. */
  readonly firstToken: string;
  /** Reply subjects of the requests seen on `team-a.echo` by another workload of the namespace. */
  readonly observedReplySubjects: string[] = [];
  /** `reason` of each disconnect advisory for a connection named `team-a/orders`. */
  readonly disconnects: string[] = [];
  readonly #dir: string;
  readonly #key: KeyObject;
  readonly #podUid: string;
  readonly #clients: NatsConnection[] = [];
  #rotation: ReturnType<typeof setInterval> | undefined;
  #writing: Promise<void> = Promise.resolve();
  #hidden = false;

  private constructor(
    stack: KubeStack,
    dir: string,
    token: { key: KeyObject; podUid: string; first: string },
  ) {
    this.stack = stack;
    this.#dir = dir;
    this.#key = token.key;
    this.#podUid = token.podUid;
    this.tokenFile = `${dir}/token`;
    this.firstToken = token.first;
  }

  /** Start the stack, create the workload and write its first token. */
  static async start(): Promise<ClientRig> {
    const stack = await KubeStack.start();
    const dir = await Deno.makeTempDir({ prefix: "client-token-" });
    try {
      await stack.addServiceAccount(NAMESPACE, SERVICE_ACCOUNT);
      await stack.addServiceAccount(NAMESPACE, "observer");
      const { uid: podUid } = await stack.kube.createPod(NAMESPACE, POD, SERVICE_ACCOUNT);
      // The key the apiserver signs ServiceAccount tokens with (tests/support/kube_apiserver.ts).
      const key = createPrivateKey(await Deno.readTextFile(`${stack.kube.dir}/sa-0.key`));
      const first = await mintToken(stack, key, podUid);
      const rig = new ClientRig(stack, dir, { key, podUid, first });
      await rig.#write(rig.firstToken);
      await rig.#watch();
      rig.#rotation = setInterval(() => {
        rig.#writing = rig.#writing.then(() => rig.#rotate());
      }, 1000);
      return rig;
    } catch (err) {
      await stack[Symbol.asyncDispose]();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw err;
    }
  }

  async #write(token: string): Promise<void> {
    await Deno.writeTextFile(`${this.tokenFile}.new`, token + "\n");
    await Deno.rename(`${this.tokenFile}.new`, this.tokenFile);
  }

  /** The kubelet stand-in: a new token into the file, unless the apiserver refuses to mint one. */
  async #rotate(): Promise<void> {
    if (this.#hidden) return;
    try {
      await this.#write(await mintToken(this.stack, this.#key, this.#podUid));
    } catch {
      // While the ServiceAccount is gone, TokenRequest answers 404 and the file keeps its token.
    }
  }

  /**
   * Take the token file away for `ms` (the kubelet stand-in writes none meanwhile), then write a
   * fresh token again.
   */
  async hideToken(ms: number): Promise<void> {
    this.#hidden = true;
    await this.#writing;
    await Deno.remove(this.tokenFile).catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, ms));
    this.#hidden = false;
    this.#writing = this.#writing.then(() => this.#rotate());
    await this.#writing;
  }

  async #watch(): Promise<void> {
    const observer = await this.stack.connect(await this.stack.token(NAMESPACE, "observer"));
    observer.subscribe(`${NAMESPACE}.echo`, {
      callback: (_err, msg) => void this.observedReplySubjects.push(msg.reply ?? ""),
    });
    await observer.flush();
    const sys = await connect({
      servers: this.stack.nats.url,
      user: this.stack.systemUser.user,
      pass: this.stack.systemUser.password,
    });
    this.#clients.push(sys);
    sys.subscribe("$SYS.ACCOUNT.APP.DISCONNECT", {
      callback: (_err, msg) => {
        const event = msg.json<{ client?: { name?: string }; reason?: string }>();
        if (event.client?.name === `${NAMESPACE}/${SERVICE_ACCOUNT}`) {
          this.disconnects.push(event.reason ?? "");
        }
      },
    });
    await sys.flush();
  }

  /** How many user-JWT expiries the server has cut the example's connection for. */
  expiries(): number {
    return this.disconnects.filter((r) => /authentication expired/i.test(r)).length;
  }

  /**
   * The service's login decisions, in order. A refusal before the token is verified (an expired
   * one, say) names no ServiceAccount, so callers tell clients apart by when they connect.
   */
  decisions(): Record<string, unknown>[] {
    return this.stack.logs.filter((l) => l.event === "login_allowed" || l.event === "login_denied");
  }

  /** Stop the rotation, the clients and the stack; remove the token file. */
  async [Symbol.asyncDispose](): Promise<void> {
    clearInterval(this.#rotation);
    await this.#writing;
    for (const nc of this.#clients) await nc.close().catch(() => {});
    await this.stack[Symbol.asyncDispose]();
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }
}

const ROOT = new URL("../..", import.meta.url).pathname;

/**
 * Run `program` as the workload and prove the three rules (see the module doc). Throws with the
 * program's output on any failure.
 */
export async function proveThreeRules(program: ClientProgram): Promise<void> {
  await using rig = await ClientRig.start();
  const child = new Deno.Command(program.command, {
    args: program.args,
    cwd: program.cwd ?? ROOT,
    env: { NATS_URL: rig.stack.nats.url, NATS_TOKEN_FILE: rig.tokenFile },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = collectLines(child.stdout);
  const err = collectLines(child.stderr);
  const replies = () => out.lines.filter((l) => /^reply: echo: ping \d+$/.test(l)).length;
  const moreReplies = async (what: string, timeoutMs: number) => {
    const before = replies();
    await waitFor(() => replies() > before, { timeoutMs, what });
  };
  let stopped = false;
  try {
    await moreReplies("the first reply", 20_000);
    assert.ok(
      out.lines.includes(
        `starting as ${NAMESPACE}/${SERVICE_ACCOUNT}, inbox prefix ${PRIVATE_INBOX}`,
      ),
      "it names its private inbox",
    );
    // Rule 3: the reply goes to the private inbox, which no other ServiceAccount may read.
    await waitFor(() => rig.observedReplySubjects.length > 0, { what: "a request observed" });
    for (const subject of rig.observedReplySubjects) {
      assert.ok(subject.startsWith(`${PRIVATE_INBOX}.`), `reply subject ${subject}`);
    }

    // Rule 1: two user-JWT expiries later it still gets replies, with tokens it read from the file
    // since: the first one is refused now.
    await waitFor(() => rig.expiries() >= 2, {
      timeoutMs: 30_000,
      what: "two user-JWT expiries",
    });
    await moreReplies("a reply after two expiries", 10_000);
    const probed = rig.decisions().length;
    await assert.rejects(
      rig.stack.connect(rig.firstToken),
      /authorization violation/i,
      "the first token, rotated out of the file, is refused",
    );
    assert.ok(
      rig.decisions().slice(probed).some((l) =>
        l.event === "login_denied" && l.reason === "token_expired"
      ),
      "refused as expired",
    );

    // Rule 2: the ServiceAccount is deleted and recreated; until the kubelet stand-in has a token
    // for the new one, every reconnect is refused. The example keeps trying and comes back.
    const decided = rig.decisions().length;
    await rig.stack.kube.deleteServiceAccount(NAMESPACE, SERVICE_ACCOUNT);
    // Three refusals in a row: clients that give up do so after the same error twice.
    const refused = () => rig.decisions().slice(decided).filter((l) => l.event === "login_denied");
    await waitFor(() => refused().length >= 3, {
      timeoutMs: 30_000,
      what: "three reconnects of the example refused (one that gave up stops trying)",
    });
    const refusals = refused();
    await rig.stack.kube.createServiceAccount(NAMESPACE, SERVICE_ACCOUNT);
    await waitFor(
      () =>
        rig.decisions().slice(decided).some((l) =>
          l.event === "login_allowed" && l.serviceaccount === SERVICE_ACCOUNT
        ),
      { timeoutMs: 20_000, what: "a login after the ServiceAccount was recreated" },
    );
    await moreReplies("a reply after the refused reconnect", 10_000);
    assert.ok(
      refusals.every((l) => /^(serviceaccount_not_found|token_expired)$/.test(String(l.reason))),
      `refused while the ServiceAccount was gone: ${refusals.map((l) => l.reason)}`,
    );

    // The token file gone for longer than a user JWT lives: the connection is cut meanwhile, the
    // reconnects find no file (refused, not the end), and replies come again once it is back.
    const cut = rig.expiries();
    await rig.hideToken((TOKEN_LIFETIME_S + 4) * 1000);
    await waitFor(() => rig.expiries() > cut, {
      timeoutMs: 10_000,
      what: "a user-JWT expiry while the token file was gone",
    });
    await moreReplies("a reply after the token file came back", 15_000);

    child.kill("SIGTERM");
    stopped = true;
    const status = await child.status;
    await Promise.all([out.done, err.done]);
    assert.ok(
      (program.exitCodes ?? [0]).includes(status.code),
      `exit status ${status.code} after SIGTERM`,
    );
    assert.equal(out.lines.at(-1), "stopped");
  } catch (failure) {
    if (!stopped) {
      try {
        child.kill("SIGKILL");
      } catch { /* it exited by itself */ }
    }
    const status = await child.status;
    await Promise.all([out.done, err.done]).catch(() => {});
    const tail = (l: Lines) => l.lines.slice(-40).join("\n");
    const decisions = rig.decisions().map((l) => `${l.event} ${l.reason ?? l.serviceaccount}`)
      .join(", ");
    throw new Error(
      `${(failure as Error).message}\n--- exit status ${status.code}\n--- stdout\n${
        tail(out)
      }\n--- stderr\n${tail(err)}\n` +
        `--- disconnects: ${rig.disconnects.join(", ")}\n--- decisions: ${decisions}`,
      { cause: failure },
    );
  }
}
