package jdiffusion.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import jdiffusion.server.JDiffusionServer;
import jdiffusion.server.ServerConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code dev load-test}: against a server on the tiny model every prompt finishes once; beyond loopback refused. */
class LoadTestCommandTest {
    @TempDir
    Path tmp;

    @Test
    void loadTestAgainstATinyModelServer() throws Exception {
        Files.createDirectories(tmp.resolve("models/checkpoints"));
        Files.copy(CliTests.golden().resolve("models/tiny-sd1-fp16.safetensors"),
                tmp.resolve("models/checkpoints/tiny-sd1-fp16.safetensors"));
        try (JDiffusionServer server = JDiffusionServer.start(ServerConfig.defaults(tmp).withPort(0))) {
            CliTests.Result r = CliTests.run("dev", "load-test", "--url", "http://127.0.0.1:" + server.port(),
                    "--clients", "3", "--requests", "6", "--size", "32", "--steps", "1");
            assertEquals(0, r.code(), r.out() + r.err());
            assertTrue(r.out().contains("exactly once: 6 of 6 accepted prompts"), r.out());
            assertTrue(r.out().contains("HTTP statuses of /prompt: {200=6}"), r.out());
            assertTrue(r.out().contains("end-to-end latency (ms): p50 "), r.out());
        }
    }

    @Test
    void onlyLoopbackAndBounded() {
        for (List<String> args : List.of(List.of("--url", "http://8.8.8.8:8188"), List.of("--url", "http://10.0.0.1"),
                List.of("--url", "ftp://127.0.0.1"), List.of("--url", "http://127.0.0.1:1", "--clients", "1000"),
                List.of("--url", "http://127.0.0.1:1", "--requests", "0"))) {
            String[] argv = new String[args.size() + 2];
            argv[0] = "dev";
            argv[1] = "load-test";
            for (int i = 0; i < args.size(); i++) {
                argv[i + 2] = args.get(i);
            }
            CliTests.Result r = CliTests.run(argv);
            assertEquals(2, r.code(), args + ": " + r.err());
            assertTrue(r.err().contains("--url must be") || r.err().contains("--clients must be")
                    || r.err().contains("--requests must be"), r.err());
        }
    }
}
