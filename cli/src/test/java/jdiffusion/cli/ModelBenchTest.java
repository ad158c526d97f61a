package jdiffusion.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/** Argument handling of bench unet|vae|text|generate: one-line errors before any work (the runs are commands). */
class ModelBenchTest {
    @Test
    void unknownArchitecture() {
        assertOneLineError("unknown architecture 'sd3'", "bench", "unet", "--arch", "sd3");
    }

    @Test
    void missingCheckpoint() {
        assertOneLineError("no checkpoint file /nonexistent/x.safetensors", "bench", "vae", "--checkpoint",
                "/nonexistent/x.safetensors");
    }

    @Test
    void sizeNotAMultipleOf8() {
        assertOneLineError("multiples of 8, got 500x512", "bench", "vae", "-W", "500");
    }

    @Test
    void zeroRuns() {
        assertOneLineError("--runs must be at least 1, got 0", "bench", "text", "--runs", "0");
    }

    @Test
    void everyModelBenchIsASubcommand() {
        PrintStream saved = System.out;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
        try {
            assertEquals(0, Main.run("bench", "--help"));
        } finally {
            System.setOut(saved);
        }
        String help = out.toString(StandardCharsets.UTF_8);
        for (String sub : new String[] {"unet", "vae", "text", "generate"}) {
            assertTrue(help.contains(sub), help);
        }
    }

    private static void assertOneLineError(String expected, String... args) {
        PrintStream saved = System.err;
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
        try {
            assertNotEquals(0, Main.run(args));
        } finally {
            System.setErr(saved);
        }
        String text = err.toString(StandardCharsets.UTF_8).strip();
        assertTrue(text.contains(expected), text);
        assertEquals(1, text.lines().count(), text);
    }
}
