package jdiffusion.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngReader;
import jdiffusion.tensor.Precision;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code --precision fp32|bf16}: generate in bf16 gives the fp32 image within a few levels (the bound of
 * Bf16PipelineGoldenTest), bench says which path ran, the forced fallback is announced, a bad name is a one-line error.
 */
class PrecisionCliTest {
    @TempDir
    Path dir;

    @AfterEach
    void backToFp32() {
        Precision.setDefault(Precision.FP32); // the flag sets the process default: leave the JVM as found
    }

    private static String model() {
        return CliTests.golden().resolve("models").resolve("tiny-sd1-fp16.safetensors").toString();
    }

    private PngImage generate(String precision) throws Exception {
        Path png = dir.resolve(precision + ".png");
        CliTests.Result r = CliTests.run("generate", "-m", model(), "-p", "a red cube", "--steps", "3", "-W", "64",
                "-H", "64", "-s", "5", "-q", "--precision", precision, "-o", png.toString());
        assertEquals(0, r.code(), r.err());
        return PngReader.read(png);
    }

    @Test
    void bf16ImageWithinAFewLevelsOfFp32() throws Exception {
        PngImage fp32 = generate("fp32");
        PngImage bf16 = generate("bf16");
        assertEquals(Precision.BF16, Precision.getDefault());
        int worst = 0;
        for (int i = 0; i < fp32.rgb().length; i++) {
            worst = Math.max(worst, Math.abs((fp32.rgb()[i] & 0xFF) - (bf16.rgb()[i] & 0xFF)));
        }
        assertTrue(worst <= 8, "bf16 PNG differs from fp32 by " + worst + " levels");
    }

    @Test
    void benchNamesThePathThatRan() {
        CliTests.Result r = CliTests.run("bench", "text", "-c", model(), "--runs", "1", "--warmup", "0",
                "--precision", "bf16");
        assertEquals(0, r.code(), r.err());
        String expected = Precision.describe(Precision.BF16);
        assertTrue(r.out().contains("precision: " + expected), r.out());
        assertTrue(expected.startsWith("bf16 via oneDNN 3.8.1, isa ") || expected.startsWith("fp32 Java (bf16 unavailable: "),
                expected);
    }

    @Test
    void forcedFallbackIsAnnounced() {
        System.setProperty("jdiffusion.bf16", "off");
        try {
            CliTests.Result r = CliTests.run("bench", "text", "-c", model(), "--runs", "1", "--warmup", "0",
                    "--precision", "bf16");
            assertEquals(0, r.code(), r.err());
            assertTrue(r.out().contains("precision: fp32 Java (bf16 unavailable: forced off"), r.out());
        } finally {
            System.clearProperty("jdiffusion.bf16");
        }
    }

    @Test
    void unknownPrecisionIsAOneLineError() {
        CliTests.Result r = CliTests.run("generate", "-m", model(), "-p", "x", "--precision", "fp16");
        assertNotEquals(0, r.code());
        String text = r.err().strip();
        assertTrue(text.contains("--precision must be fp32 or bf16, got fp16"), text);
        assertEquals(1, text.lines().count(), text);
    }
}
