package jdiffusion.model;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.OpenClipWeights;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * Golden cases {@code textenc_<model>_<te>}: input ids to every hidden output the manifest lists, at its tolerance,
 * with the weights read from the fp16 tiny checkpoint and from an F32 copy of it. {@code <model>} names the tiny
 * checkpoint ({@code tiny-<model>-fp16.safetensors}); {@code te} is its only text encoder, {@code teN} the N-th.
 */
class ClipTextEncoderGoldenTest {
    @TempDir
    static Path tmp;

    @TestFactory
    Stream<DynamicTest> textEncoderCases() {
        return Golden.manifests("textenc_").stream().flatMap(m -> Stream.of("fp16", "fp32")
                .map(precision -> DynamicTest.dynamicTest(Golden.caseName(m) + " " + precision, () -> check(m, precision))));
    }

    private static void check(Path manifest, String precision) throws Exception {
        String name = Golden.caseName(manifest);
        String[] parts = name.split("_");
        String model = parts[1];
        int index = parts[2].equals("te") ? 0 : Integer.parseInt(parts[2].substring(2)) - 1;
        Path fp16 = Golden.model("tiny-" + model + "-fp16.safetensors");
        try (SafeTensors file16 = SafeTensors.open(fp16)) {
            Family family = TextConditioner.detect(file16);
            if (precision.equals("fp16")) {
                run(manifest, TextConditioner.textEncoderWeights(file16, family).get(index));
                return;
            }
            Path f32 = tmp.resolve("tiny-" + model + "-te-fp32.safetensors");
            if (!Files.exists(f32)) {
                F32Copy.write(file16, "", f32);
            }
            try (SafeTensors file32 = SafeTensors.open(f32)) {
                assertEquals("F32", file32.info(file32.names().iterator().next()).dtype().name());
                run(manifest, TextConditioner.textEncoderWeights(file32, family).get(index));
            }
        }
    }

    private static void run(Path manifest, Weights weights) throws IOException {
        String name = Golden.caseName(manifest);
        JsonNode m = Golden.json(manifest);
        ClipTextEncoder encoder = ClipTextEncoder.load(weights);
        JsonNode config = m.get("params").get("config");
        if (config != null) {
            assertEquals(config.get("hidden_size").asInt(), encoder.config().width(), "width");
            assertEquals(config.get("num_hidden_layers").asInt(), encoder.config().layers(), "layers");
            assertEquals(config.get("num_attention_heads").asInt(), encoder.config().heads(), "heads");
            assertEquals(config.get("intermediate_size").asInt(), encoder.config().mlpSize(), "mlp");
            assertEquals(config.get("hidden_act").asText().equals("gelu"), encoder.config().activation() == ClipTextEncoder.Activation.GELU,
                    "activation " + config.get("hidden_act") + " (OpenCLIP layout: " + OpenClipWeights.isOpenClip(weights) + ")");
        }
        try (SafeTensors golden = Golden.tensors(manifest)) {
            JsonNode in = m.get("inputs").get("input_ids");
            long[] raw = golden.longs(in.get("tensor").asText());
            int batch = in.get("shape").get(0).asInt();
            int[] ids = new int[raw.length];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = Math.toIntExact(raw[i]);
            }
            ClipTextEncoder.Output out = encoder.forward(ids, batch);
            int rows = out.batch() * out.tokens();
            List<String> checked = new ArrayList<>();
            for (Map.Entry<String, JsonNode> o : (Iterable<Map.Entry<String, JsonNode>>) () -> m.get("outputs").fields()) {
                float[] actual = switch (o.getKey()) {
                    case "last_hidden_state" -> out.lastHiddenState();
                    case "penultimate" -> out.hidden(-2);
                    case "penultimate_ln" -> encoder.finalLayerNorm(out.hidden(-2), rows);
                    case "pooled" -> out.pooled();
                    case "text_embeds" -> out.textEmbeds();
                    default -> throw new AssertionError(name + ": unknown output " + o.getKey());
                };
                double atol = o.getValue().get("tolerance").get("atol").asDouble();
                Golden.assertClose(name + " " + o.getKey(), golden.floats(o.getValue().get("tensor").asText()), actual, atol);
                checked.add(o.getKey());
            }
            assertEquals(m.get("outputs").size(), checked.size());
        }
    }
}
