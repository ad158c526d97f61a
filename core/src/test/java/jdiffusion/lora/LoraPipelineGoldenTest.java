package jdiffusion.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import jdiffusion.model.Conditioning;
import jdiffusion.model.Family;
import jdiffusion.model.TextConditioner;
import jdiffusion.model.UNet;
import jdiffusion.text.ClipTokenizer;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * The pipeline cases that fuse a LoRA (params.lora), through the real models: the prompt encoded by the patched
 * text encoder(s) must give the recorded first-UNet-call context (and SDXL pooled text_embeds), and the patched UNet
 * must reproduce the recorded first UNet output at the manifest's tolerance.
 */
class LoraPipelineGoldenTest {
    /** The diffusers cases record no tolerance for the UNet inputs; the textenc_* cases' atol is 1e-5..3e-5. */
    private static final double CONTEXT_ATOL = 3e-5;

    @TestFactory
    Stream<DynamicTest> loraPipelineCases() {
        return Golden.manifests("pipe_").stream()
                .filter(m -> GoldenModels.manifest(m).path("params").has("lora"))
                .map(m -> DynamicTest.dynamicTest(Golden.caseName(m), () -> check(m)));
    }

    private void check(Path manifest) throws Exception {
        String name = Golden.caseName(manifest);
        JsonNode json = GoldenModels.manifest(manifest);
        JsonNode params = json.get("params");
        float scale = (float) params.get("lora").get("scale").asDouble();
        Path loraPath = Golden.dir().resolve(params.get("lora").get("file").asText());
        try (SafeTensors ckpt = SafeTensors.open(GoldenModels.checkpoint(params));
             SafeTensors golden = Golden.tensors(manifest);
             LoraStack stack = LoraStack.load(GoldenModels.components(ckpt), List.of(new LoraSpec(loraPath, scale, scale)))) {
            assertEquals(List.of(), stack.warnings());
            ModelComponents patched = stack.weights();
            JsonNode in = json.get("inputs");
            checkText(name, params.get("call"), patched, golden, in);
            checkUnet(name, patched.unet(), golden, in, json.get("outputs").get("unet_call0.out"));
        }
    }

    private static void checkText(String name, JsonNode call, ModelComponents patched, SafeTensors golden, JsonNode in) {
        boolean sdxl = patched.te2() != null;
        List<Weights> encoders = new ArrayList<>(List.of(patched.te1()));
        if (sdxl) {
            encoders.add(patched.te2());
        }
        TextConditioner tc = TextConditioner.of(sdxl ? Family.SDXL : Family.SD1, encoders);
        Conditioning cond = tc.encodeTokens(tokens(tc, call.get("prompt").asText()));
        List<Conditioning> rows = new ArrayList<>();
        if (call.path("guidance_scale").asDouble(7.5) > 1) {
            JsonNode negative = call.get("negative_prompt");
            boolean none = negative == null || negative.isNull();
            rows.add(none && sdxl ? cond.zerosLike() : tc.encodeTokens(tokens(tc, none ? "" : negative.asText())));
        }
        rows.add(cond);
        Golden.assertClose(name + " context from the LoRA-patched text encoder(s)",
                golden.floats(in.get("unet_call0.context").get("tensor").asText()),
                concat(rows.stream().map(Conditioning::context).toList()), CONTEXT_ATOL);
        if (sdxl) {
            Golden.assertClose(name + " pooled text_embeds from the LoRA-patched te2",
                    golden.floats(in.get("unet_call0.text_embeds").get("tensor").asText()),
                    concat(rows.stream().map(Conditioning::pooled).toList()), CONTEXT_ATOL);
        }
    }

    /** diffusers' tokenization: truncation to 77, tokenizer 2 pads with 0. */
    private static Map<String, int[][]> tokens(TextConditioner tc, String prompt) {
        Map<String, int[][]> out = new LinkedHashMap<>();
        for (String enc : tc.tokenize(prompt).keySet()) {
            ClipTokenizer t = ClipTokenizer.diffusers(enc.equals("clip_l") ? ClipTokenizer.EOS : 0);
            out.put(enc, new int[][] {t.encodePadded(prompt)});
        }
        return out;
    }

    private static void checkUnet(String name, Weights unetWeights, SafeTensors golden, JsonNode in, JsonNode out)
            throws Exception {
        UNet unet = UNet.load(unetWeights);
        int[] xs = Golden.shape(in.get("unet_call0.sample"));
        int batch = xs[0];
        float[] t = golden.floats(in.get("unet_call0.timestep").get("tensor").asText());
        float[] timesteps = new float[batch];
        Arrays.fill(timesteps, t[0]);
        float[] y = null;
        if (in.has("unet_call0.text_embeds")) {
            y = UNet.sdxlAdm(golden.floats(in.get("unet_call0.text_embeds").get("tensor").asText()), batch,
                    golden.floats(in.get("unet_call0.time_ids").get("tensor").asText()));
        }
        float[] actual = unet.forward(golden.floats(in.get("unet_call0.sample").get("tensor").asText()), batch, xs[2], xs[3],
                timesteps, golden.floats(in.get("unet_call0.context").get("tensor").asText()),
                Golden.shape(in.get("unet_call0.context"))[1], y);
        float[] expected = golden.floats(out.get("tensor").asText());
        double atol = out.get("tolerance").get("atol").asDouble();
        Golden.assertClose(name + " first call of the LoRA-patched UNet", expected, actual, atol);
        // the LoRA must matter at this tolerance, or the comparison above proves nothing about the patching
        float[] plain = UNet.load(((LoraWeights) unetWeights).base()).forward(
                golden.floats(in.get("unet_call0.sample").get("tensor").asText()), batch, xs[2], xs[3], timesteps,
                golden.floats(in.get("unet_call0.context").get("tensor").asText()), Golden.shape(in.get("unet_call0.context"))[1], y);
        assertTrue(Golden.maxAbsDiff(expected, plain) > 10 * atol, name + ": the unpatched UNet is too close to tell");
    }

    private static float[] concat(List<float[]> parts) {
        int n = parts.stream().mapToInt(p -> p.length).sum();
        float[] all = new float[n];
        int o = 0;
        for (float[] p : parts) {
            System.arraycopy(p, 0, all, o, p.length);
            o += p.length;
        }
        return all;
    }

}
