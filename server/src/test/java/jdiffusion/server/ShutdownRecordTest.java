package jdiffusion.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 16 items 7 and 12 with real processes: a second server on a base dir in use is refused (the lock is held by
 * another JVM), and a prompt running when the server is stopped with SIGTERM is filed as interrupted after the
 * restart instead of running again, while the prompt queued behind it still runs.
 */
class ShutdownRecordTest {
    private static final Duration WAIT = Duration.ofMinutes(3);

    @TempDir
    Path tmp;

    @Test
    void sigtermRecordsTheStopAndTheLockRefusesASecondServer() throws Exception {
        Path base = ServerFixture.baseDir(tmp);
        RestartTest.Server first = RestartTest.Server.start(base, tmp.resolve("first.log"));
        String running;
        String pending;
        try {
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> JDiffusionServer.start(ServerFixture.config(base)));
            assertTrue(e.getMessage().contains("another jdiffusion server is already running"), e.getMessage());
            ServerFixture.Client c = new ServerFixture.Client(first.port(), null);
            ServerFixture.Ws ws = c.websocket("s");
            running = c.queue(ServerFixture.txt2img(2, 500, 64), "s");
            pending = c.queue(ServerFixture.txt2img(3, 1, 32), "s");
            JsonNode step = ws.next("progress", WAIT);
            assertEquals(running, step.path("data").path("prompt_id").asText());
        } finally {
            first.process().destroy(); // SIGTERM: the shutdown hook closes the server
            assertTrue(first.process().waitFor(60, TimeUnit.SECONDS), "the server stops on SIGTERM");
        }
        RestartTest.Server second = RestartTest.Server.start(base, tmp.resolve("second.log"));
        try {
            ServerFixture.Client c = new ServerFixture.Client(second.port(), null);
            assertEquals("success", c.waitHistory(pending, WAIT).path("status").path("status_str").asText());
            JsonNode stopped = c.get("/history/" + running).json().path(running);
            String messages = stopped.path("status").path("messages").toString();
            assertEquals("error", stopped.path("status").path("status_str").asText(), stopped.toString());
            assertTrue(messages.contains("execution_interrupted"), messages);
            assertFalse(messages.contains("execution_restarted"), "not run again: " + messages);
        } finally {
            second.kill();
        }
    }
}
