package jdiffusion.model.t5;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.DType;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.SafeTensorsWriter;
import jdiffusion.io.Weights;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * Golden cases {@code textenc_sd35_t5*}: every {@code input_ids_N} to {@code hidden_N} at the manifest's tolerance,
 * with the T5 read from the fp16 checkpoint as shipped (under {@code text_encoders.t5xxl.transformer.}) and from a
 * separate F32 T5 file with the bare HF names (the {@code t5xxl_fp16.safetensors} layout).
 */
class T5EncoderGoldenTest {
    @TempDir
    static Path tmp;

    @TestFactory
    Stream<DynamicTest> t5Cases() {
        return Golden.manifestsIn("sd35", "textenc_sd35_t5").stream().flatMap(m -> Stream.of("fp16 checkpoint", "fp32 separate file")
                .map(v -> DynamicTest.dynamicTest(Golden.caseName(m) + " " + v, () -> check(m, v))));
    }

    /** Writes the T5 tensors of a checkpoint under their bare HF names, as dtype (a separate T5 file). */
    static Path separateFile(Path checkpoint, DType dtype, Path dir) throws Exception {
        Path out = dir.resolve(checkpoint.getFileName() + "-t5-" + dtype + ".safetensors");
        if (!Files.exists(out)) {
            try (SafeTensors src = SafeTensors.open(checkpoint)) {
                String prefix = T5Encoder.prefixIn(src);
                SafeTensorsWriter w = SafeTensorsWriter.to(out);
                for (String n : src.names()) {
                    if (n.startsWith(prefix)) {
                        w.addFrom(src, n, n.substring(prefix.length()), dtype);
                    }
                }
                w.write();
            }
        }
        return out;
    }

    private static void check(Path manifest, String variant) throws Exception {
        JsonNode m = Golden.json(manifest);
        JsonNode config = m.get("params").get("config");
        Path checkpoint = Golden.fp16Model(config);
        Path file = variant.startsWith("fp16") ? checkpoint : separateFile(checkpoint, DType.F32, tmp);
        try (SafeTensors st = SafeTensors.open(file)) {
            assertEquals(variant.startsWith("fp16") ? "text_encoders.t5xxl.transformer." : "", T5Encoder.prefixIn(st));
            Weights w = T5Encoder.weights(st);
            String q = "encoder.block.0.layer.0.SelfAttention.q.weight";
            assertEquals(variant.startsWith("fp16") ? DType.F16 : DType.F32, w.dtype(q));
            T5Encoder enc = T5Encoder.load(w);
            T5Encoder.Config c = enc.config();
            assertEquals(config.get("d_model").asInt(), c.dModel(), "d_model");
            assertEquals(config.get("num_heads").asInt(), c.heads(), "heads");
            assertEquals(config.get("d_kv").asInt(), c.dKv(), "d_kv");
            assertEquals(config.get("d_ff").asInt(), c.dFf(), "d_ff");
            assertEquals(config.get("num_layers").asInt(), c.layers(), "layers");
            assertEquals(config.get("vocab_size").asInt(), c.vocabSize(), "vocab");
            assertEquals(config.get("relative_attention_num_buckets").asInt(), c.buckets(), "buckets");
            assertEquals(config.get("relative_attention_max_distance").asInt(), c.maxDistance(), "max distance");
            assertEquals(config.get("is_gated_act").asBoolean(), c.gated(), "gated");
            int bytesPerWeight = variant.startsWith("fp16") ? 2 : 4;
            assertTrue(enc.weightBytes() >= (long) bytesPerWeight * c.layers() * (4L * c.dModel() * c.inner() + 3L * c.dModel() * c.dFf()),
                    "weights kept in the file's precision");
            assertTrue(enc.weightBytes() < (long) (bytesPerWeight + 1) * c.layers() * (4L * c.dModel() * c.inner() + 3L * c.dModel() * c.dFf()) * 2);
            List<String> checked = new ArrayList<>();
            try (SafeTensors golden = Golden.tensors(manifest)) {
                for (Map.Entry<String, JsonNode> in : iterable(m.get("inputs"))) {
                    String suffix = in.getKey().substring("input_ids_".length());
                    JsonNode out = m.get("outputs").get("hidden_" + suffix);
                    int[] shape = Golden.shape(in.getValue());
                    long[] raw = golden.longs(in.getValue().get("tensor").asText());
                    int[] ids = new int[raw.length];
                    for (int i = 0; i < ids.length; i++) {
                        ids[i] = Math.toIntExact(raw[i]);
                    }
                    float[] hidden = enc.forward(ids, shape[0]);
                    float[] expected = golden.floats(out.get("tensor").asText());
                    Golden.assertClose(Golden.caseName(manifest) + " " + variant + " hidden_" + suffix, expected, hidden,
                            out.get("tolerance").get("atol").asDouble());
                    checked.add(suffix);
                }
            }
            assertEquals(m.get("outputs").size(), checked.size(), "every output checked");
        }
    }

    private static Iterable<Map.Entry<String, JsonNode>> iterable(JsonNode node) {
        List<Map.Entry<String, JsonNode>> l = new ArrayList<>();
        node.fields().forEachRemaining(l::add);
        return l;
    }
}
