import { KubeCluster } from "./support/cluster/cluster.ts";
import { installStack, stackImages } from "./support/cluster/stack.ts";
await using cluster = await KubeCluster.start({ images: await stackImages() });
const s = await installStack(cluster);
const t = await s.helm(["test", "nats-k8s-oidc-callout", "-n", "nats", "--logs"], {
  allowFailure: true,
});
console.log(t.code, t.stdout.slice(-2500), t.stderr.slice(-800));
