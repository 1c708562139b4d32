import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;

/**
 * Runs mongo-java-server in the foreground as a stand-in for a MongoDB server.
 *
 * Options (all optional): --host 127.0.0.1, --port 27017, --backend h2|memory,
 * --data DIR (h2 only: the folder of its store file), --report-version 6.0.0,
 * --wire-version 17.
 *
 * The library reports MongoDB 5.0 with wire version 8 by default, older than current
 * drivers accept (PyMongo 4.14+ wants 9 or more), so the launcher reports a newer
 * version: what the server can do is unchanged, only the handshake differs.
 * The oplog is on so that change streams work. SIGTERM closes the store cleanly.
 */
public final class MongoLauncher {

    private MongoLauncher() {
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> options = parse(args);
        String host = options.getOrDefault("host", "127.0.0.1");
        int port = Integer.parseInt(options.getOrDefault("port", "27017"));
        MongoBackend backend = backend(options);
        backend.version(reportedVersion(options));

        MongoServer server = new MongoServer(backend);
        server.enableOplog();
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.shutdown();
            stopped.countDown();
        }, "mongo-stand-in-shutdown"));
        server.bind(host, port);
        System.out.println("mongo-java-server listening on " + host + ":" + port + " (" + backend + ")");
        stopped.await();
    }

    private static MongoBackend backend(Map<String, String> options) throws Exception {
        String kind = options.getOrDefault("backend", "h2");
        if (kind.equals("memory")) {
            return new MemoryBackend();
        }
        if (!kind.equals("h2")) {
            throw new IllegalArgumentException("--backend must be h2 or memory, not " + kind);
        }
        Path folder = Path.of(options.getOrDefault("data", "."));
        Files.createDirectories(folder);
        return new H2Backend(folder.resolve("mongo.mv").toAbsolutePath().toString());
    }

    private static MongoVersion reportedVersion(Map<String, String> options) {
        String text = options.getOrDefault("report-version", "6.0.0");
        int wire = Integer.parseInt(options.getOrDefault("wire-version", "17"));
        List<Integer> parts = java.util.Arrays.stream(text.split("\\."))
            .map(Integer::valueOf)
            .toList();
        return new MongoVersion() {
            @Override
            public List<Integer> getVersionArray() {
                return parts;
            }

            @Override
            public int getWireVersion() {
                return wire;
            }
        };
    }

    private static Map<String, String> parse(String[] args) {
        Map<String, String> options = new HashMap<>();
        for (int i = 0; i < args.length; i++) {
            if (!args[i].startsWith("--") || i + 1 >= args.length) {
                throw new IllegalArgumentException("expected --name value pairs, got " + args[i]);
            }
            options.put(args[i].substring(2), args[++i]);
        }
        return options;
    }
}
