/**
 * The permissions of the service process have one source, lib/config/permissions.ts; the `start`,
 * `explain` and `compile` tasks of deno.json are written from it by `deno task permissions`
 * (tools/permissions.ts). This test fails while deno.json differs from that source.
 */
import assert from "node:assert/strict";
import {
  DENIED_METADATA_HOSTS,
  IMAGE_READ_PATHS,
  PROCESS_ENV_VARS,
  TASK_PERMISSIONS,
} from "../../lib/config/permissions.ts";
import { CONFIG_ENV_VARS } from "../../lib/config/variables.ts";
import { updateDenoJson, withPermissions } from "../../tools/permissions.ts";
import { ROOT, taskWords } from "../support/start_task.ts";

Deno.test("permissions: deno.json's start, explain and compile tasks carry lib/config/permissions.ts", async () => {
  const text = await Deno.readTextFile(`${ROOT}deno.json`);
  assert.ok(updateDenoJson(text) === text, "deno.json is out of date: run deno task permissions");
});

Deno.test("permissions: each task's scoped flags, word for word", async () => {
  for (const [task, permissions] of Object.entries(TASK_PERMISSIONS)) {
    const words = await taskWords(task);
    for (const [flag, values] of Object.entries(permissions)) {
      assert.deepEqual(
        words.filter((w) => w.startsWith(`--${flag}=`)),
        [`--${flag}=${values.join(",")}`],
        `${task} --${flag}`,
      );
    }
  }
  assert.deepEqual(Object.keys(TASK_PERMISSIONS), ["start", "explain", "compile"]);
});

Deno.test("permissions: the process reads the configuration's variables, the kubelet's and a kubeconfig's", () => {
  assert.deepEqual(PROCESS_ENV_VARS, CONFIG_ENV_VARS);
  for (const name of ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KUBECONFIG", "HOME"]) {
    assert.ok(PROCESS_ENV_VARS.includes(name), name);
  }
  assert.ok(IMAGE_READ_PATHS.includes("/var/run/secrets"));
  assert.deepEqual(DENIED_METADATA_HOSTS, [
    "169.254.169.254",
    "[fd00:ec2::254]",
    "metadata.google.internal",
  ]);
});

Deno.test("permissions: the generator replaces only the flag words it owns", () => {
  const command = "deno compile --frozen --v8-flags=--a,--b --allow-net --deny-net=x " +
    "--allow-read=/old --allow-env=OLD --ignore-env --output dist/bin dist/main.js";
  assert.equal(
    withPermissions(command, { "deny-net": ["h1", "[::1]"], "allow-read": ["/a", "/b"] }),
    "deno compile --frozen --v8-flags=--a,--b --allow-net --deny-net=h1,[::1] " +
      "--allow-read=/a,/b --allow-env=OLD --ignore-env --output dist/bin dist/main.js",
  );
  // An unscoped flag is not the scoped one: `--allow-read` alone stays as it is.
  assert.throws(
    () => withPermissions("deno run --allow-read main.ts", { "allow-read": ["/a"] }),
    /expected one --allow-read= in the command, found 0/,
  );
  assert.throws(
    () => withPermissions("deno run --allow-env=A --allow-env=B m.ts", { "allow-env": ["C"] }),
    /found 2/,
  );
});

Deno.test("permissions: deno.json is edited in place, its formatting kept", () => {
  const before = [
    "{",
    '  "tasks": {',
    '    "start": "deno run --allow-read --allow-env=OLD --ignore-env main.ts",',
    '    "explain": "deno run --allow-env= main.ts explain",',
    '    "other": "deno run --allow-env=OLD x.ts",',
    '    "compile": {',
    '      "command": "deno compile --deny-net= --allow-read=/x --allow-env=OLD dist/main.js",',
    '      "dependencies": ["bundle"]',
    "    }",
    "  }",
    "}",
    "",
  ].join("\n");
  const env = PROCESS_ENV_VARS.join(",");
  const after = updateDenoJson(before);
  assert.equal(
    after,
    before
      .replace("--allow-env=OLD --ignore-env main.ts", `--allow-env=${env} --ignore-env main.ts`)
      .replace("--allow-env= main.ts explain", `--allow-env=${env} main.ts explain`)
      .replace(
        "--deny-net= --allow-read=/x --allow-env=OLD dist",
        `--deny-net=${DENIED_METADATA_HOSTS.join(",")} ` +
          `--allow-read=${IMAGE_READ_PATHS.join(",")} --allow-env=${env} dist`,
      ),
  );
  assert.ok(after.includes('"other": "deno run --allow-env=OLD x.ts"'), "other tasks untouched");
  assert.equal(updateDenoJson(after), after);
  assert.throws(() => updateDenoJson('{ "tasks": {} }'), /deno.json has no "start" task/);
});
