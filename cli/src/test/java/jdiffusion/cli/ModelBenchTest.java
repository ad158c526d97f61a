package jdiffusion.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

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

    private static void assertOneLineError(String expected, String... args) {
        CliTests.Result r = CliTests.run(args);
        assertNotEquals(0, r.code());
        String text = r.err().strip();
        assertTrue(text.contains(expected), text);
        assertEquals(1, text.lines().count(), text);
    }
}
