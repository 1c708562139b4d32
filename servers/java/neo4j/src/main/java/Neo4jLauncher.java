import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;

import org.neo4j.cli.ExecutionContext;
import org.neo4j.commandline.admin.security.SetInitialPasswordCommand;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import picocli.CommandLine;

/**
 * Runs an embedded Neo4j Community database with its Bolt connector, in the foreground.
 *
 * Usage: java -cp ... Neo4jLauncher HOME_DIR CONFIG_DIR
 *
 * CONFIG_DIR holds a neo4j.conf (Bolt address, memory, auth). The password of the `neo4j`
 * user comes from the NEO4J_PASSWORD environment variable and is set before the first start,
 * the same way `neo4j-admin dbms set-initial-password` does it, so Bolt never accepts the
 * default password. SIGTERM shuts the database down cleanly.
 */
public final class Neo4jLauncher {
    private Neo4jLauncher() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: Neo4jLauncher HOME_DIR CONFIG_DIR");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        Path configDir = Path.of(args[1]).toAbsolutePath();
        String password = System.getenv().getOrDefault("NEO4J_PASSWORD", "examples-pass");

        if (!Files.exists(home.resolve("data/databases/system"))) {
            setInitialPassword(home, configDir, password);
        }

        long started = System.nanoTime();
        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(home)
                .loadPropertiesFromFile(configDir.resolve("neo4j.conf"))
                .build();
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("neo4j: shutting down");
            dbms.shutdown();
            stopped.countDown();
        }, "neo4j-shutdown"));
        System.out.printf("neo4j: started in %d ms%n", (System.nanoTime() - started) / 1_000_000);
        stopped.await();
    }

    private static void setInitialPassword(Path home, Path configDir, String password) {
        ExecutionContext context = new ExecutionContext(home, configDir);
        int code = new CommandLine(new SetInitialPasswordCommand(context)).execute(password);
        if (code != 0) {
            throw new IllegalStateException("setting the initial password failed with code " + code);
        }
    }
}
