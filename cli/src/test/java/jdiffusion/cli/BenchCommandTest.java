package jdiffusion.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/** The bench command's argument handling (the benchmark itself is a command to run, not a test). */
class BenchCommandTest {
    @Test
    void badThreadCountIsOneLineError() {
        PrintStream saved = System.err;
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
        try {
            assertNotEquals(0, Main.run("bench", "gemm", "-t", "0"));
        } finally {
            System.setErr(saved);
        }
        String text = err.toString(StandardCharsets.UTF_8).strip();
        assertTrue(text.contains("--threads must be at least 1"), text);
        assertEquals(1, text.lines().count(), text);
    }

    @Test
    void gemmIsASubcommandOfBench() {
        PrintStream saved = System.out;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
        try {
            assertEquals(0, Main.run("bench", "--help"));
        } finally {
            System.setOut(saved);
        }
        assertTrue(out.toString(StandardCharsets.UTF_8).contains("gemm"), out.toString(StandardCharsets.UTF_8));
    }
}
