package jdiffusion.server;

import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;

/**
 * Runs a server until the process ends: {@code java -cp ... jdiffusion.server.ServerMain [--port N] [--listen ADDR]
 * [--base-dir DIR] [--auth-token T] [--extra-model-paths FILE]} (the CLI's {@code serve} does the same). Prints
 * {@code jdiffusion: serving on http://ADDR:PORT/} once it listens.
 */
public final class ServerMain {
    private ServerMain() {
    }

    public static void main(String[] args) throws InterruptedException {
        ServerConfig config = ServerConfig.defaults(Path.of("."));
        String token = System.getenv("JDIFFUSION_AUTH_TOKEN");
        Path base = Path.of(".");
        for (int i = 0; i < args.length; i++) {
            String v = i + 1 < args.length ? args[i + 1] : null;
            if (v == null) {
                fail("option " + args[i] + " needs a value");
            }
            switch (args[i]) {
                case "--port" -> config = config.withPort(port(v));
                case "--listen" -> config = config.withListen(v);
                case "--base-dir" -> base = Path.of(v);
                case "--auth-token" -> token = v;
                case "--extra-model-paths" -> config = config.withExtraModelPaths(Path.of(v));
                default -> fail("unknown option " + args[i]);
            }
            i++;
        }
        config = new ServerConfig(config.listen(), config.port(), base, token, config.extraModelPaths(),
                config.maxQueue(), config.maxBodyBytes(), config.maxPixels(), config.maxSteps(), config.maxBatch(),
                config.modelBudgetBytes(), config.apiSize(), config.apiSteps());
        JDiffusionServer server;
        try {
            server = JDiffusionServer.start(config);
        } catch (RuntimeException e) {
            System.err.println("jdiffusion: error: " + e.getMessage());
            System.exit(1);
            return;
        }
        announce(config, server);
        Runtime.getRuntime().addShutdownHook(new Thread(server::close));
        new CountDownLatch(1).await();
    }

    private static int port(String v) {
        try {
            return Integer.parseInt(v);
        } catch (NumberFormatException e) {
            fail("--port must be a number, not '" + v + "'");
            return 0;
        }
    }

    private static void fail(String message) {
        System.err.println("jdiffusion: error: " + message);
        System.exit(2);
    }

    public static void announce(ServerConfig config, JDiffusionServer server) {
        String host = config.listen().contains(":") ? "[" + config.listen() + "]" : config.listen();
        System.out.println("jdiffusion: serving on http://" + host + ":" + server.port() + "/ (base dir "
                + server.paths().base() + ")");
        System.out.flush();
    }
}
