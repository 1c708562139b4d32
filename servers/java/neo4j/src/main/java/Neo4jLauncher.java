import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CountDownLatch;

import org.neo4j.cli.ExecutionContext;
import org.neo4j.commandline.admin.security.SetInitialPasswordCommand;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import picocli.CommandLine;

/**
 * Runs an embedded Neo4j Community database with its Bolt connector, in the foreground.
 *
 * <pre>
 * java -cp ... Neo4jLauncher HOME_DIR CONFIG_DIR            serve until SIGTERM
 * java -cp ... Neo4jLauncher --warmup HOME_DIR CONFIG_DIR   start, run a few queries, stop
 * </pre>
 *
 * CONFIG_DIR holds a neo4j.conf (Bolt address, memory, auth). The password of the `neo4j`
 * user comes from the NEO4J_PASSWORD environment variable and is stored before the first
 * start, as `neo4j-admin dbms set-initial-password` does, so Bolt never accepts the default
 * password. SIGTERM shuts the database down cleanly. The warm-up run exists so the install
 * script can record the classes a start loads into a class data sharing archive.
 */
public final class Neo4jLauncher {
    private static final List<String> WARMUP_QUERIES = List.of(
            "CREATE CONSTRAINT warm_id IF NOT EXISTS FOR (p:Warm) REQUIRE p.id IS UNIQUE",
            "CREATE INDEX warm_name IF NOT EXISTS FOR (p:Warm) ON (p.name)",
            "UNWIND range(1, 50) AS i MERGE (p:Warm {id: i}) SET p.name = 'w' + i",
            "MATCH (a:Warm), (b:Warm) WHERE b.id = a.id + 1 MERGE (a)-[:NEXT]->(b)",
            "PROFILE MATCH (p:Warm {name: 'w7'}) RETURN p.id",
            "EXPLAIN MATCH (p:Warm) WHERE p.id > 3 RETURN count(*)",
            "MATCH path = shortestPath((a:Warm {id: 1})-[:NEXT*]-(b:Warm {id: 9})) RETURN length(path)",
            "MATCH (a:Warm {id: 1})-[:NEXT*1..3]->(b) RETURN collect(b.id)",
            "MATCH (p:Warm) RETURN p.id % 5 AS k, count(*) AS n ORDER BY k",
            "DROP CONSTRAINT warm_id IF EXISTS");

    private Neo4jLauncher() {}

    public static void main(String[] args) throws Exception {
        boolean warmup = args.length == 3 && args[0].equals("--warmup");
        if (args.length != 2 && !warmup) {
            System.err.println("usage: Neo4jLauncher [--warmup] HOME_DIR CONFIG_DIR");
            System.exit(2);
        }
        Path home = Path.of(args[args.length - 2]).toAbsolutePath();
        Path configDir = Path.of(args[args.length - 1]).toAbsolutePath();
        String password = System.getenv().getOrDefault("NEO4J_PASSWORD", "examples-pass");

        if (!Files.exists(home.resolve("data/databases/system"))) {
            setInitialPassword(home, configDir, password);
        }
        long started = System.nanoTime();
        DatabaseManagementService dbms = start(home, configDir);
        System.out.printf("neo4j: started in %d ms%n", (System.nanoTime() - started) / 1_000_000);
        if (warmup) {
            runQueries(dbms.database("neo4j"));
            dbms.shutdown();
            return;
        }
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("neo4j: shutting down");
            dbms.shutdown();
            stopped.countDown();
        }, "neo4j-shutdown"));
        stopped.await();
    }

    /** Starts the DBMS, or exits: a failed start leaves threads behind that keep a JVM alive. */
    private static DatabaseManagementService start(Path home, Path configDir) {
        try {
            return new DatabaseManagementServiceBuilder(home)
                    .loadPropertiesFromFile(configDir.resolve("neo4j.conf"))
                    .build();
        } catch (RuntimeException error) {
            error.printStackTrace();
            System.out.flush();
            Runtime.getRuntime().halt(1);
            throw error;
        }
    }

    private static void setInitialPassword(Path home, Path configDir, String password) {
        ExecutionContext context = new ExecutionContext(home, configDir);
        int code = new CommandLine(new SetInitialPasswordCommand(context)).execute(password);
        if (code != 0) {
            throw new IllegalStateException("setting the initial password failed with code " + code);
        }
    }

    private static void runQueries(GraphDatabaseService db) {
        for (String query : WARMUP_QUERIES) {
            db.executeTransactionally(query);
        }
        System.out.printf("neo4j: ran %d warm-up queries%n", WARMUP_QUERIES.size());
    }
}
