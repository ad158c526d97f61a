package jdiffusion.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import jdiffusion.Golden;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngReader;
import jdiffusion.io.SafeTensors;

/** Shared helpers of the pipeline golden tests. */
final class PipeGolden {
    /** Some manifests hold -Infinity / NaN (log of a zero sigma, kl_optimal), which strict JSON rejects. */
    private static final ObjectMapper LENIENT = new ObjectMapper()
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS.mappedFeature());

    private PipeGolden() {
    }

    static JsonNode json(Path manifest) {
        try {
            return LENIENT.readTree(manifest.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Checks one manifest output (by logical name) at its own tolerance. */
    static void check(String caseName, JsonNode manifest, SafeTensors tensors, String output, float[] actual) {
        JsonNode o = manifest.path("outputs").path(output);
        if (o.isMissingNode()) {
            throw new AssertionError(caseName + ": manifest has no output " + output);
        }
        double atol = o.path("tolerance").path("atol").asDouble(1e-5);
        Golden.assertClose(caseName + " " + output, tensors.floats(o.get("tensor").asText()), actual, atol);
    }

    /** Max 8-bit difference between the golden PNG and ours must be within the manifest's recommendation. */
    static void checkPng(String caseName, Path goldenPng, PngImage ours, int tolerance) throws IOException {
        PngImage expected = PngReader.read(goldenPng);
        assertEquals(expected.width(), ours.width(), caseName + " PNG width");
        assertEquals(expected.height(), ours.height(), caseName + " PNG height");
        int worst = 0;
        for (int i = 0; i < expected.rgb().length; i++) {
            worst = Math.max(worst, Math.abs((expected.rgb()[i] & 0xFF) - (ours.rgb()[i] & 0xFF)));
        }
        if (worst > tolerance) {
            throw new AssertionError(caseName + " PNG " + goldenPng.getFileName() + ": max level difference " + worst
                    + " > " + tolerance);
        }
    }

    static Path model(String name) {
        return Golden.model(name);
    }
}
