package jdiffusion.cli;

import static jdiffusion.cli.CliTests.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import jdiffusion.cli.CliTests.Result;
import org.junit.jupiter.api.Test;

/** {@code jdiffusion info} on PyTorch pickle files: container, wrapper dict, values; hostile files refused in one line. */
class InfoPickleTest {
    private static Path model(String name) {
        return CliTests.golden().resolve("models").resolve(name);
    }

    @Test
    void zipAndLegacyCheckpointsReportTheirContainer() throws Exception {
        for (String[] f : new String[][] {{"tiny-sd1-subset.ckpt", "pytorch zip"}, {"tiny-sd1-subset-legacy.ckpt", "pytorch legacy"}}) {
            Result r = run("info", model(f[0]).toString());
            assertEquals(0, r.code(), r.err());
            assertTrue(r.out().contains(": " + f[1] + ", 25 tensors, "), r.out());
            assertTrue(r.out().contains("tensors of 'state_dict'"), r.out());
            assertTrue(r.out().contains("values: global_step=1"), r.out());
            assertTrue(r.out().contains("not a checkpoint: "), r.out());
            Result j = run("info", "--json", model(f[0]).toString());
            assertEquals(0, j.code(), j.err());
            JsonNode n = new ObjectMapper().readTree(j.out());
            assertEquals(f[1], n.get("container").asText());
            assertEquals("state_dict", n.get("pickle_root").asText());
            assertEquals(25, n.get("tensors").asInt());
        }
    }

    @Test
    void anUpscalerPthShowsParamsEma() {
        Result r = run("info", model("tiny-esrgan-realesrgan-x4.pth").toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("pytorch zip") && r.out().contains("tensors of 'params_ema'"), r.out());
    }

    @Test
    void maliciousPicklesAreRefusedInOneLineAndNothingRuns() {
        Path pwned = Path.of("/tmp/jdiffusion-pwned");
        boolean before = Files.exists(pwned);
        for (String[] f : new String[][] {{"malicious.ckpt", "posix.system"}, {"malicious-legacy.ckpt", "__builtin__.exec"}}) {
            Result r = run("info", model(f[0]).toString());
            assertNotEquals(0, r.code());
            String[] lines = r.err().strip().split("\n");
            assertEquals(1, lines.length, r.err());
            assertTrue(lines[0].contains("refused pickle global '" + f[1] + "'"), lines[0]);
            assertFalse(r.err().contains("Exception"), r.err());
        }
        assertEquals(before, Files.exists(pwned), "the payload must not have run");
    }
}
