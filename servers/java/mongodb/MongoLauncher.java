import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import de.bwaldvogel.mongo.bson.BsonTimestamp;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.wire.message.MongoMessage;

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
 *
 * Two answers are completed the way a MongoDB replica set writes them (see {@link #complete}):
 * aggregate replies carry an operationTime (PyMongo refuses to open a change stream
 * without one), and collStats replies also carry totalIndexSize and indexSizes.
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

        MongoServer server = new MongoServer(completing(backend));
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

    /** The backend, with the reply of every command passed through {@link #complete}. */
    private static MongoBackend completing(MongoBackend backend) {
        return (MongoBackend) Proxy.newProxyInstance(
            MongoBackend.class.getClassLoader(),
            new Class<?>[] {MongoBackend.class},
            (proxy, method, args) -> {
                Object reply = invoke(backend, method, args);
                if (method.getName().equals("handleCommand") && reply instanceof Document document) {
                    complete((String) args[2], document);
                } else if (method.getName().equals("handleMessage") && reply instanceof Document document) {
                    Document request = ((MongoMessage) args[0]).getDocument();
                    complete(request.keySet().iterator().next(), document);
                }
                return reply;
            });
    }

    private static Object invoke(MongoBackend backend, Method method, Object[] args) throws Throwable {
        try {
            return method.invoke(backend, args);
        } catch (InvocationTargetException error) {
            throw error.getCause();  // the server's own error, e.g. a duplicate key, unchanged
        }
    }

    private static void complete(String command, Document reply) {
        if (command.equalsIgnoreCase("aggregate") && !reply.containsKey("operationTime")) {
            reply.put("operationTime", new BsonTimestamp(Instant.now(), 1));
        }
        if (command.equalsIgnoreCase("collStats") && reply.get("indexSize") instanceof Document sizes) {
            long total = 0;
            for (Object size : sizes.values()) {
                total += ((Number) size).longValue();
            }
            reply.put("indexSizes", sizes);
            reply.put("totalIndexSize", total);
        }
    }

    private static MongoVersion reportedVersion(Map<String, String> options) {
        String text = options.getOrDefault("report-version", "6.0.0");
        int wire = Integer.parseInt(options.getOrDefault("wire-version", "17"));
        List<Integer> parts = Arrays.stream(text.split("\\."))
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
