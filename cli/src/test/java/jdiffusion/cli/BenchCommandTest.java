package jdiffusion.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The bench command's argument handling (the benchmark itself is a command to run, not a test). */
class BenchCommandTest {
    @Test
    void badThreadCountIsOneLineError() {
        CliTests.Result r = CliTests.run("bench", "gemm", "-t", "0");
        assertNotEquals(0, r.code());
        String text = r.err().strip();
        assertTrue(text.contains("--threads must be at least 1"), text);
        assertEquals(1, text.lines().count(), text);
    }

    @Test
    void everyBenchIsASubcommandOfBench() {
        CliTests.Result r = CliTests.run("bench", "--help");
        assertEquals(0, r.code());
        for (String sub : new String[] {"gemm", "unet", "vae", "text", "generate"}) {
            assertTrue(r.out().contains(sub), r.out());
        }
    }
}
