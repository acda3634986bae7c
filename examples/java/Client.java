import io.nats.client.Connection;
import io.nats.client.Dispatcher;
import io.nats.client.Message;
import io.nats.client.Nats;
import io.nats.client.Options;
import io.nats.client.support.JsonParser;
import io.nats.client.support.JsonValue;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Base64;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * A jnats client that logs in with its Kubernetes ServiceAccount token, the way every client of
 * nats-k8s-oidc-callout should (docs/client-usage.md):
 *
 * <ol>
 *   <li>Read the token file on every connect and reconnect ({@code tokenSupplier}), never once at
 *       start: the kubelet rewrites the projected token before it expires, and the server closes a
 *       connection when its user JWT runs out.
 *   <li>Never give up. jnats closes the connection when a reconnect meets the same authorization
 *       error twice in a row, whatever {@code maxReconnects} says, so a loop makes a new connection
 *       whenever one closes (and when the first connect is refused).
 *   <li>Use the private inbox prefix {@code _INBOX_<namespace>_<serviceaccount with . -> _>}.
 * </ol>
 *
 * <p>It answers requests on {@code <namespace>.echo} and sends itself one request a second, printing
 * each reply, until SIGTERM or SIGINT:
 *
 * <pre>NATS_URL=nats://127.0.0.1:4222 NATS_TOKEN_FILE=/path/to/token java -cp … Client</pre>
 */
public final class Client {
    private static final Path TOKEN_FILE = Path.of(
        System.getenv().getOrDefault("NATS_TOKEN_FILE", "/var/run/secrets/nats/token"));

    private static char[] readToken() {
        try {
            return Files.readString(TOKEN_FILE).trim().toCharArray();
        } catch (IOException e) {
            System.err.println("reading NATS token: " + e);
            return new char[0];
        }
    }

    /** Namespace and ServiceAccount from the token's claims (unverified: only to name the inbox). */
    private static String[] tokenOwner(String token) throws IOException {
        byte[] payload = Base64.getUrlDecoder().decode(token.split("\\.")[1]);
        JsonValue k8s = JsonParser.parse(payload).map.get("kubernetes.io");
        return new String[] {
            k8s.map.get("namespace").string, k8s.map.get("serviceaccount").map.get("name").string};
    }

    public static void main(String[] args) throws Exception {
        String[] owner = tokenOwner(new String(readToken()));
        String namespace = owner[0], serviceAccount = owner[1];
        String inboxPrefix = "_INBOX_" + namespace + "_" + serviceAccount.replace('.', '_');
        System.out.printf("starting as %s/%s, inbox prefix %s%n", namespace, serviceAccount, inboxPrefix);
        CountDownLatch stop = new CountDownLatch(1), stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> { // SIGTERM, SIGINT
            stop.countDown();
            try {
                stopped.await(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }));

        // docs:start connect
        Options options = new Options.Builder()
            .server(System.getenv().getOrDefault("NATS_URL", "nats://127.0.0.1:4222"))
            .tokenSupplier(Client::readToken) // called on every connect and reconnect
            .maxReconnects(-1)
            .inboxPrefix(inboxPrefix)
            .connectionName(namespace + "/" + serviceAccount)
            .build();
        while (stop.getCount() > 0) {
            Connection nc;
            try {
                nc = Nats.connect(options);
            } catch (IOException e) { // refused or unreachable: try again
                System.err.println("connect failed: " + e.getMessage());
                stop.await(2, TimeUnit.SECONDS);
                continue;
            }
            run(nc, namespace, stop); // returns when jnats closed nc, or on stop
            if (nc.getStatus() == Connection.Status.CONNECTED) nc.drain(Duration.ofSeconds(5)).get();
            nc.close();
        }
        // docs:end connect
        System.out.println("stopped");
        stopped.countDown();
    }

    private static int pings = 0;

    /** Answer on {@code <namespace>.echo} and ask it once a second, until nc closes or stop. */
    private static void run(Connection nc, String namespace, CountDownLatch stop)
            throws InterruptedException {
        String subject = namespace + ".echo";
        Dispatcher echo = nc.createDispatcher(msg -> nc.publish(msg.getReplyTo(),
            ("echo: " + new String(msg.getData(), StandardCharsets.UTF_8)).getBytes(StandardCharsets.UTF_8)));
        echo.subscribe(subject);
        while (stop.getCount() > 0 && nc.getStatus() != Connection.Status.CLOSED) {
            try {
                Message reply = nc.request(subject, ("ping " + ++pings).getBytes(StandardCharsets.UTF_8),
                    Duration.ofSeconds(2));
                if (reply == null) System.err.println("request failed: timeout");
                else System.out.println("reply: " + new String(reply.getData(), StandardCharsets.UTF_8));
            } catch (RuntimeException e) {
                System.err.println("request failed: " + e);
            }
            stop.await(1, TimeUnit.SECONDS);
        }
    }
}
