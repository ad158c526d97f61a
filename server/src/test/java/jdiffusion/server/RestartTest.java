package jdiffusion.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The queue survives a crash: a server process (java -cp the built classes) takes several prompts, is killed with
 * SIGKILL while one runs, and is started again on the same base dir. The prompt that was running runs again (its
 * history says so), the pending ones run, and the history from before the crash is still there.
 */
class RestartTest {
    private static final Pattern SERVING = Pattern.compile("serving on http://127\\.0\\.0\\.1:(\\d+)/");
    private static final Duration WAIT = Duration.ofMinutes(4);

    @TempDir
    Path tmp;

    @Test
    void acceptedPromptsSurviveSigkill() throws Exception {
        Path base = ServerFixture.baseDir(tmp);
        Server first = Server.start(base, tmp.resolve("first.log"));
        String before;
        String running;
        List<String> pending = new ArrayList<>();
        try {
            ServerFixture.Client c = new ServerFixture.Client(first.port, null);
            before = c.queue(ServerFixture.txt2img(1, 1, 32), "r");
            assertEquals("success", c.waitHistory(before, WAIT).path("status").path("status_str").asText());
            ServerFixture.Ws ws = c.websocket("r");
            running = c.queue(ServerFixture.txt2img(2, 30, 32), "r");
            pending.add(c.queue(ServerFixture.txt2img(3, 1, 32), "r"));
            pending.add(c.queue(ServerFixture.txt2img(4, 1, 32), "r"));
            JsonNode step = ws.next("progress", WAIT);
            assertEquals(running, step.path("data").path("prompt_id").asText());
        } finally {
            first.kill();
        }
        Server second = Server.start(base, tmp.resolve("second.log"));
        try {
            ServerFixture.Client c = new ServerFixture.Client(second.port, null);
            JsonNode again = c.waitHistory(running, WAIT);
            assertEquals("success", again.path("status").path("status_str").asText(), again.toString());
            assertTrue(again.path("status").path("messages").toString().contains("execution_restarted"),
                    again.toString());
            for (String id : pending) {
                assertEquals("success", c.waitHistory(id, WAIT).path("status").path("status_str").asText());
            }
            JsonNode history = c.get("/history").json();
            assertTrue(history.has(before), "history from before the crash survives");
            assertEquals(4, history.size(), history.toString());
            assertEquals(0, c.get("/prompt").json().path("exec_info").path("queue_remaining").asInt());
        } finally {
            second.kill();
        }
    }

    /** A server in its own JVM, on an ephemeral port read from its first line. */
    record Server(Process process, int port) {
        static Server start(Path base, Path log) throws IOException {
            String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
            ProcessBuilder pb = new ProcessBuilder(java, "--add-modules", "jdk.incubator.vector",
                    "--enable-native-access=ALL-UNNAMED", "-Xmx2g", "-cp", System.getProperty("java.class.path"),
                    ServerMain.class.getName(), "--port", "0", "--base-dir", base.toString());
            pb.redirectError(log.toFile());
            Process p = pb.start();
            CompletableFuture<Integer> port = new CompletableFuture<>();
            Thread.ofPlatform().daemon().start(() -> {
                try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(),
                        StandardCharsets.UTF_8))) {
                    for (String line; (line = r.readLine()) != null; ) {
                        Matcher m = SERVING.matcher(line);
                        if (m.find()) {
                            port.complete(Integer.parseInt(m.group(1)));
                        }
                    }
                } catch (IOException e) {
                    port.completeExceptionally(e);
                }
                port.completeExceptionally(new IllegalStateException("server exited before listening"));
            });
            try {
                return new Server(p, port.get(2, TimeUnit.MINUTES));
            } catch (Exception e) {
                p.destroyForcibly();
                throw new AssertionError("server did not start (see " + log + "): " + e, e);
            }
        }

        /** SIGKILL: no shutdown hook, no clean close of the database. */
        void kill() throws InterruptedException {
            process.destroyForcibly();
            process.waitFor(30, TimeUnit.SECONDS);
        }
    }
}
