package jdiffusion.cli;

import static jdiffusion.cli.CliTests.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import jdiffusion.cli.CliTests.Result;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code jdiffusion serve} refuses unsafe or broken settings with one line, before listening anywhere. */
class ServeCommandTest {
    @TempDir
    Path tmp;

    @Test
    void refusesToListenBeyondLoopbackWithoutAToken() {
        assumeTrue(System.getenv("JDIFFUSION_AUTH_TOKEN") == null, "a token in the environment would allow it");
        Result r = run("serve", "--listen", "0.0.0.0", "--port", "0", "--base-dir", tmp.toString());
        assertEquals(1, r.code());
        assertTrue(r.err().contains("beyond loopback") && r.err().contains("--auth-token"), r.err());
        assertEquals(1, r.err().strip().lines().count(), "one line, no stack trace: " + r.err());
        assertTrue(Files.notExists(tmp.resolve("jdiffusion-queue.sqlite")), "nothing created before the check");
    }

    @Test
    void refusesAMissingExtraModelPathsFile() {
        Result r = run("serve", "--port", "0", "--base-dir", tmp.toString(), "--extra-model-paths",
                tmp.resolve("nope.yaml").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("nope.yaml") && r.err().contains("not found"), r.err());
    }

    @Test
    void refusesABadPort() {
        Result r = run("serve", "--port", "70000", "--base-dir", tmp.toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("--port"), r.err());
    }

    @Test
    void refusesAFrontEndRootWithoutIndexAndABadPreviewMethod() {
        Result r = run("serve", "--port", "0", "--base-dir", tmp.toString(), "--front-end-root", tmp.toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("--front-end-root") && r.err().contains("index.html"), r.err());
        r = run("serve", "--port", "0", "--base-dir", tmp.toString(), "--preview-method", "fancy");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("--preview-method") && r.err().contains("latent2rgb"), r.err());
    }
}
