package logpipe.esnode;

import org.elasticsearch.Build;
import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.common.transport.TransportAddress;
import org.elasticsearch.http.HttpServerTransport;
import org.elasticsearch.node.ClasspathPluginsNode;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.transport.netty4.Netty4Plugin;

import java.io.IOException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Runs one real Elasticsearch node (server + Netty4 HTTP/transport) in this JVM, bound to 127.0.0.1.
 *
 * <p>Usage: {@code EmbeddedNode [--http-port N] [--transport-port N|A-B] [--data-dir DIR] [--cluster-name NAME]
 * [--node-name NAME] [--setting key=value]... [--exit-on-stdin-eof]}. Each option can also be given as a system
 * property ({@code -Desnode.http.port}, {@code -Desnode.transport.port}, {@code -Desnode.data.dir},
 * {@code -Desnode.cluster.name}, {@code -Desnode.node.name}, {@code -Desnode.exit.on.stdin.eof=true});
 * command-line arguments win.
 *
 * <p>{@code DIR} is the node's working directory: {@code DIR} itself is {@code path.home}, {@code DIR/data} holds
 * the index data and {@code DIR/logs} is {@code path.logs}. Prints one line starting with
 * {@value #STARTED_MARKER} once HTTP is bound; exits cleanly on SIGTERM/SIGINT (exit status 143/130).
 *
 * <p>The node is a stock {@link Node} (see {@link ClasspathPluginsNode}); the differences from a distribution are
 * that its plugins are loaded from the classpath instead of a {@code modules/} directory, and that only the
 * Netty4 network module (HTTP + transport, from Maven Central) plus {@link RootInfoPlugin} ({@code GET /}) are
 * present. No test framework, no mocks, no x-pack.
 */
public final class EmbeddedNode {

    public static final String STARTED_MARKER = "logpipe-esnode started";

    private EmbeddedNode() {}

    public static void main(String[] args) throws Exception {
        String httpPort = System.getProperty("esnode.http.port", "9200");
        String transportPort = System.getProperty("esnode.transport.port", "9300-9399");
        String dataDir = System.getProperty("esnode.data.dir", "esnode-data");
        String clusterName = System.getProperty("esnode.cluster.name", "logpipe-dev");
        String nodeName = System.getProperty("esnode.node.name", "logpipe-esnode");
        boolean exitOnStdinEof = Boolean.getBoolean("esnode.exit.on.stdin.eof");
        List<String> extra = new ArrayList<>();

        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            String v = (i + 1 < args.length) ? args[i + 1] : null;
            switch (a) {
                case "--http-port" -> { httpPort = need(a, v); i++; }
                case "--transport-port" -> { transportPort = need(a, v); i++; }
                case "--data-dir" -> { dataDir = need(a, v); i++; }
                case "--cluster-name" -> { clusterName = need(a, v); i++; }
                case "--node-name" -> { nodeName = need(a, v); i++; }
                case "--setting", "-E" -> { extra.add(need(a, v)); i++; }
                case "--exit-on-stdin-eof" -> exitOnStdinEof = true;
                case "-h", "--help" -> { usage(); return; }
                default -> {
                    if (a.startsWith("-E") && a.length() > 2) {
                        extra.add(a.substring(2));
                    } else {
                        System.err.println("unknown argument: " + a);
                        usage();
                        System.exit(2);
                    }
                }
            }
        }

        Path home = Path.of(dataDir).toAbsolutePath().normalize();
        Path data = home.resolve("data");
        Path logs = home.resolve("logs");
        Files.createDirectories(data);
        Files.createDirectories(logs);
        Files.createDirectories(home.resolve("config"));

        configureLogging();

        Settings.Builder sb = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", data.toString())
            .put("path.logs", logs.toString())
            .put("cluster.name", clusterName)
            .put("node.name", nodeName)
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("http.port", httpPort)
            .put("transport.port", transportPort)
            .put("transport.type", Netty4Plugin.NETTY_TRANSPORT_NAME)
            .put("http.type", Netty4Plugin.NETTY_HTTP_TRANSPORT_NAME)
            // the disk may be fairly full on dev/CI machines: never block shard allocation on watermarks
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .put("action.auto_create_index", true)
            // a small heap: the real-memory parent breaker trips too eagerly under SerialGC
            .put("indices.breaker.total.use_real_memory", false);
        for (String kv : extra) {
            int eq = kv.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("setting must be key=value: " + kv);
            }
            sb.put(kv.substring(0, eq), kv.substring(eq + 1));
        }
        Settings settings = sb.build();

        List<Class<? extends Plugin>> plugins = List.of(Netty4Plugin.class, RootInfoPlugin.class);
        long t0 = System.nanoTime();
        final Node node = new ClasspathPluginsNode(settings, plugins);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("logpipe-esnode stopping");
            System.out.flush();
            try {
                node.prepareForClose();
                node.close();
                if (node.awaitClose(20, TimeUnit.SECONDS) == false) {
                    System.err.println("logpipe-esnode: node did not close within 20s");
                }
            } catch (IOException | InterruptedException | RuntimeException e) {
                System.err.println("logpipe-esnode: error while stopping: " + e);
            } finally {
                System.out.println("logpipe-esnode stopped");
                System.out.flush();
                stopped.countDown();
            }
        }, "esnode-shutdown"));

        if (exitOnStdinEof) {
            // The launching process keeps our stdin open; when it dies (even by SIGKILL) the pipe closes and the
            // node shuts down cleanly instead of living on as an orphan.
            Thread watchdog = new Thread(() -> {
                try {
                    while (System.in.read() != -1) {
                        // input is ignored
                    }
                } catch (IOException e) {
                    // a broken stdin counts as EOF
                }
                System.out.println("logpipe-esnode: stdin closed, shutting down");
                System.out.flush();
                System.exit(0);
            }, "esnode-stdin-watchdog");
            watchdog.setDaemon(true);
            watchdog.start();
        }

        node.start();
        HttpServerTransport http = node.injector().getInstance(HttpServerTransport.class);
        TransportAddress pub = http.boundAddress().publishAddress();
        long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
        System.out.println(
            STARTED_MARKER + " url=http://" + pub.getAddress() + ":" + pub.getPort()
                + " cluster=" + clusterName + " node=" + nodeName
                + " version=" + Build.current().qualifiedVersion()
                + " java=" + Runtime.version() + " home=" + home + " startup_ms=" + ms
        );
        System.out.flush();
        // Node threads are non-daemon; park main until the shutdown hook has closed the node.
        stopped.await();
    }

    /** Console-only log4j config shipped in this jar, with the ES logging bridge on top of it. */
    private static void configureLogging() {
        if (System.getProperty("log4j2.configurationFile") == null) {
            URL cfg = EmbeddedNode.class.getResource("/logpipe-esnode-log4j2.properties");
            if (cfg != null) {
                System.setProperty("log4j2.configurationFile", cfg.toString());
            }
        }
        LogConfigurator.loadLog4jPlugins();
        LogConfigurator.configureESLogging();
    }

    private static String need(String flag, String value) {
        if (value == null) {
            System.err.println("missing value for " + flag);
            usage();
            System.exit(2);
        }
        return value;
    }

    private static void usage() {
        System.err.println(
            "usage: EmbeddedNode [--http-port N] [--transport-port N|A-B] [--data-dir DIR] [--cluster-name NAME] "
                + "[--node-name NAME] [--setting key=value]... [--exit-on-stdin-eof]"
        );
    }
}
