package jdiffusion.model;

import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * The first UNet call recorded in every pipeline case ({@code pipe_*}: diffusers' {@code unet_call0.sample/out},
 * ComfyUI's {@code unet_call0.xc/model_output}), replayed through the UNet with the default heads rule. These add
 * shapes the {@code unet_*} cases lack, e.g. SD1 at 8x12 (odd sizes down to 1x2 and nearest up-sampling back to
 * the skip sizes) and batch 4. Cases whose UNet is patched (LoRA) or comes from another file layout are left to
 * the tests of those loaders.
 */
class UNetPipelineCallGoldenTest {
    /** Some pipeline manifests hold -Infinity (a log of sigma 0), which strict JSON (and Golden.json) rejects. */
    private static final JsonMapper LENIENT = JsonMapper.builder()
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS).build();

    private static JsonNode json(Path manifest) {
        try {
            return LENIENT.readTree(manifest.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @TestFactory
    Stream<DynamicTest> firstUnetCallOfEveryPipeline() {
        return Golden.manifests("pipe_").stream()
                .filter(m -> usesPlainCheckpointUnet(json(m)))
                .map(m -> DynamicTest.dynamicTest(Golden.caseName(m), () -> runCase(m)));
    }

    private static boolean usesPlainCheckpointUnet(JsonNode json) {
        JsonNode params = json.get("params");
        return !params.has("lora") && !params.get("model").asText().contains("replaced")
                && !calls(json).isEmpty();
    }

    /** "unet_call0.*" entries of inputs and outputs by their short name (sample, xc, out, model_output, ...). */
    private static Map<String, JsonNode> calls(JsonNode json) {
        Map<String, JsonNode> m = new HashMap<>();
        for (String section : new String[] {"inputs", "outputs"}) {
            for (Map.Entry<String, JsonNode> e : json.get(section).properties()) {
                if (e.getKey().startsWith("unet_call0.")) {
                    m.put(e.getKey().substring("unet_call0.".length()), e.getValue());
                }
            }
        }
        return m;
    }

    private static void runCase(Path manifest) throws Exception {
        JsonNode json = json(manifest);
        Map<String, JsonNode> call = calls(json);
        JsonNode xNode = call.containsKey("sample") ? call.get("sample") : call.get("xc");
        JsonNode outNode = call.containsKey("out") ? call.get("out") : call.get("model_output");
        try (SafeTensors file = SafeTensors.open(modelFile(json.get("params").get("model").asText()));
             SafeTensors tensors = Golden.tensors(manifest)) {
            UNet unet = UNet.load(Weights.prefixed(file, "model.diffusion_model."));
            int[] xs = Golden.shape(xNode);
            int batch = xs[0];
            float[] t = tensors.floats(call.get("timestep").get("tensor").asText());
            float[] timesteps = t.length == batch ? t : filled(batch, t[0]);
            float[] y = null;
            if (call.containsKey("text_embeds")) {
                y = UNet.sdxlAdm(tensors.floats(call.get("text_embeds").get("tensor").asText()), batch,
                        tensors.floats(call.get("time_ids").get("tensor").asText()));
            }
            float[] actual = unet.forward(tensors.floats(xNode.get("tensor").asText()), batch, xs[2], xs[3], timesteps,
                    tensors.floats(call.get("context").get("tensor").asText()), Golden.shape(call.get("context"))[1], y);
            Golden.assertClose(Golden.caseName(manifest) + " first UNet call",
                    tensors.floats(outNode.get("tensor").asText()), actual,
                    outNode.get("tolerance").get("atol").asDouble());
        }
    }

    /** "models/tiny-sd1-fp32.safetensors (or ...)" -> that file, or its fp16 twin (same values) when not shipped. */
    private static Path modelFile(String modelParam) {
        String rel = modelParam.split(" ")[0];
        Path p = Golden.dir().resolve(rel);
        return Files.exists(p) ? p : Golden.dir().resolve(rel.replace("-fp32.", "-fp16."));
    }

    private static float[] filled(int n, float v) {
        float[] a = new float[n];
        Arrays.fill(a, v);
        return a;
    }

}
