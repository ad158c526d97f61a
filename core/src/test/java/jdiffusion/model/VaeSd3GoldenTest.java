package jdiffusion.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
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
 * Every SD3 VAE golden case ({@code vae_sd35_*}: 16 latent channels, no quant convs): decode of model-space latents
 * through SD3's latent format (scale and shift from the manifest), encode mean / std, and the latents made from the
 * mean; on the fp16 file and its fp32 twin.
 */
class VaeSd3GoldenTest {

    @TestFactory
    Stream<DynamicTest> everySd3VaeCase() {
        return Golden.manifestsIn("sd35", "vae_sd35").stream()
                .map(m -> DynamicTest.dynamicTest(Golden.caseName(m), () -> runCase(m, fp16Model(m))));
    }

    @TestFactory
    Stream<DynamicTest> everySd3VaeCaseOnTheFp32Twin(@TempDir Path tmp) {
        return Golden.manifestsIn("sd35", "vae_sd35").stream().map(m -> DynamicTest.dynamicTest(Golden.caseName(m),
                () -> runCase(m, Golden.fp32Twin(fp16Model(m), tmp))));
    }

    private static Path fp16Model(Path manifest) {
        return Golden.fp16Model(Golden.json(manifest).get("params").get("config"));
    }

    private static void runCase(Path manifest, Path model) throws Exception {
        JsonNode json = Golden.json(manifest);
        JsonNode params = json.get("params");
        JsonNode inputs = json.get("inputs");
        LatentFormat format = new LatentFormat(params.get("scaling_factor").asDouble(),
                params.get("shift_factor").asDouble());
        assertEquals(Family.SD3.latentFormat(), format, "SD3's latent format");
        try (SafeTensors file = SafeTensors.open(model); SafeTensors tensors = Golden.tensors(manifest)) {
            Vae vae = Vae.load(Weights.prefixed(file, "first_stage_model."));
            assertEquals(params.get("config").get("latent_channels").asInt(), vae.latentChannels());
            int[] ls = Golden.shape(inputs.get("latents"));
            float[] latents = tensors.floats(inputs.get("latents").get("tensor").asText());
            float[] decoded = vae.decode(format.toVae(latents), ls[0], ls[2], ls[3]);
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
                    case "latents_from_mean" -> format.toModel(posterior.mean());
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
