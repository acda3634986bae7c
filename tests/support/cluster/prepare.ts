/**
 * Build the test cluster's images ahead of the tests (`.ci/run` runs this once): the static
 * nats-server and `nats` CLI, CoreDNS, the pause program. Everything is cached, so a second run
 * costs the cache lookups; on a host that cannot run a cluster it says why and does nothing.
 *
 *     deno run -A tests/support/cluster/prepare.ts
 *
 * @module
 */
import { buildImage } from "./oci_image.ts";
import { clusterUnavailable } from "./host.ts";
import { corednsImage, natsBoxImage, natsServerImage, pauseImage } from "./images.ts";

if (import.meta.main) {
  const why = clusterUnavailable();
  if (why) {
    // deno-lint-ignore no-console -- a command-line tool's one line of output
    console.log(`cluster tests will be skipped: ${why}`);
  } else {
    const started = performance.now();
    for (
      const spec of [
        await pauseImage(),
        await corednsImage(),
        await natsServerImage(),
        await natsBoxImage(),
      ]
    ) {
      await buildImage(spec);
    }
    // deno-lint-ignore no-console -- a command-line tool's one line of output
    console.log(`cluster images ready (${Math.round((performance.now() - started) / 1000)} s)`);
  }
}
