package jdiffusion.model;

import static org.junit.jupiter.api.Assertions.assertFalse;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.Map;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every {@code vae_*} golden case: decode(latents / scaling_factor) raw and in [0,1], and encode(image) mean and
 * std, each at the manifest's tolerance.
 */
class VaeGoldenTest {

    @TestFactory
    Stream<DynamicTest> everyVaeCase() {
        return Golden.manifests("vae_").stream()
                .map(m -> DynamicTest.dynamicTest(Golden.caseName(m), () -> runCase(m)));
    }

    /** The same cases on the fp32 twin of each model (the F32 loading path). */
    @TestFactory
    Stream<DynamicTest> everyVaeCaseOnTheFp32Twin(@TempDir Path tmp) {
        return Golden.manifests("vae_").stream().map(m -> DynamicTest.dynamicTest(Golden.caseName(m),
                () -> runCase(m, Golden.fp32Twin(fp16Model(m), tmp))));
    }

    /**
     * The same cases with Winograd F(4x4,3x3) on every 3x3 convolution: the VAEs' res blocks take it where the shape
     * pays at full size (the tiny models' channels are below the automatic choice's minimum, so it is forced here).
     */
    @TestFactory
    Stream<DynamicTest> everyVaeCaseWithWinogradF4() {
        return Golden.manifests("vae_").stream().map(m -> DynamicTest.dynamicTest(Golden.caseName(m), () -> {
            String old = System.getProperty("jdiffusion.conv");
            System.setProperty("jdiffusion.conv", "f4");
            try {
                runCase(m);
            } finally {
                if (old == null) {
                    System.clearProperty("jdiffusion.conv");
                } else {
                    System.setProperty("jdiffusion.conv", old);
                }
            }
        }));
    }

    private static Path fp16Model(Path manifest) {
        return Golden.fp16Model(Golden.json(manifest).get("params").get("config"));
    }

    private static void runCase(Path manifest) throws Exception {
        runCase(manifest, fp16Model(manifest));
    }

    private static void runCase(Path manifest, Path model) throws Exception {
        JsonNode json = Golden.json(manifest);
        JsonNode params = json.get("params");
        JsonNode inputs = json.get("inputs");
        try (SafeTensors file = SafeTensors.open(model); SafeTensors tensors = Golden.tensors(manifest)) {
            Vae vae = Vae.load(Weights.prefixed(file, "first_stage_model."));
            float scaling = (float) params.get("scaling_factor").asDouble();
            int[] ls = Golden.shape(inputs.get("latents"));
            float[] latents = tensors.floats(inputs.get("latents").get("tensor").asText());
            for (int i = 0; i < latents.length; i++) {
                latents[i] /= scaling;
            }
            float[] decoded = vae.decode(latents, ls[0], ls[2], ls[3]);
            int[] is = Golden.shape(inputs.get("image_in"));
            Vae.Posterior posterior = vae.encode(tensors.floats(inputs.get("image_in").get("tensor").asText()), is[0],
                    is[2], is[3]);
            assertFalse(json.get("outputs").isEmpty(), "no outputs in " + manifest);
            for (Map.Entry<String, JsonNode> out : json.get("outputs").properties()) {
                float[] actual = switch (out.getKey()) {
                    case "decoded" -> decoded;
                    case "decoded01" -> Vae.toUnitRange(decoded);
                    case "enc_mean" -> posterior.mean();
                    case "enc_std" -> posterior.std();
                    default -> throw new AssertionError("unknown VAE output '" + out.getKey() + "' in " + manifest);
                };
                float[] expected = tensors.floats(out.getValue().get("tensor").asText());
                double atol = out.getValue().get("tolerance").get("atol").asDouble();
                System.out.printf("%s %s: max |diff| %.3g (atol %.3g)%n", Golden.caseName(manifest), out.getKey(),
                        Golden.maxAbsDiff(expected, actual), atol);
                Golden.assertClose(Golden.caseName(manifest) + " " + out.getKey(), expected, actual, atol);
            }
        }
    }

}
