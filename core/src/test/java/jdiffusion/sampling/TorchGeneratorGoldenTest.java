package jdiffusion.sampling;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Bit-exactness of {@link TorchGenerator} against torch's recorded CPU draws: the {@code rng_torch_randn} case (global
 * and Generator draws, consecutive draws, diffusers' per-row generator list) and {@code samplers/torch_randn} (float32
 * and float64). Cases come from the manifests.
 */
class TorchGeneratorGoldenTest {
    private static final Pattern DRAW_INDEX = Pattern.compile("draw #(\\d+) from one generator");

    @TestFactory
    List<DynamicTest> rngTorchRandn() {
        Path manifest = Golden.dir().resolve("rng_torch_randn.json");
        JsonNode draws = Golden.json(manifest).path("params").path("draws");
        List<DynamicTest> tests = new ArrayList<>();
        TreeMap<Integer, JsonNode> sequence = new TreeMap<>();
        for (JsonNode d : draws) {
            String call = d.path("call").asText();
            String tensor = d.path("tensor").asText();
            Matcher m = DRAW_INDEX.matcher(call);
            if (m.find()) {
                sequence.put(Integer.parseInt(m.group(1)), d);
            } else if (d.has("seeds")) {
                tests.add(DynamicTest.dynamicTest(tensor, () -> checkGeneratorList(manifest, d)));
            } else {
                tests.add(DynamicTest.dynamicTest(tensor, () -> {
                    float[] got = new TorchGenerator(seedOf(d.path("seed"))).randn(numel(d.path("shape")));
                    assertBitExact(tensor, read(manifest, tensor), got);
                }));
            }
        }
        assertTrue(sequence.size() >= 2, "the manifest lists consecutive draws");
        tests.add(DynamicTest.dynamicTest("consecutive draws from one generator", () -> {
            TorchGenerator g = new TorchGenerator(seedOf(sequence.firstEntry().getValue().path("seed")));
            int expectedIndex = 0;
            for (var e : sequence.entrySet()) {
                assertEquals(expectedIndex++, e.getKey(), "draw indices are consecutive");
                String tensor = e.getValue().path("tensor").asText();
                assertBitExact(tensor, read(manifest, tensor), g.randn(numel(e.getValue().path("shape"))));
            }
        }));
        return tests;
    }

    /** diffusers' randn_tensor with one generator per batch row: row i is a separate draw from Generator(seed_i). */
    private static void checkGeneratorList(Path manifest, JsonNode d) {
        JsonNode seeds = d.path("seeds");
        int total = numel(d.path("shape"));
        int perRow = total / seeds.size();
        float[] got = new float[total];
        for (int i = 0; i < seeds.size(); i++) {
            System.arraycopy(new TorchGenerator(seedOf(seeds.get(i))).randn(perRow), 0, got, i * perRow, perRow);
        }
        String tensor = d.path("tensor").asText();
        assertBitExact(tensor, read(manifest, tensor), got);
    }

    @TestFactory
    List<DynamicTest> samplersTorchRandn() {
        Path manifest = Golden.dir().resolve("samplers/torch_randn.json");
        JsonNode root = Golden.json(manifest);
        List<DynamicTest> tests = new ArrayList<>();
        for (JsonNode e : root.path("entries")) {
            String key = e.path("key").asText();
            long seed = seedOf(e.path("seed"));
            int n = numel(e.path("shape"));
            tests.add(DynamicTest.dynamicTest(key + ".f32", () ->
                    assertBitExact(key, read(manifest, key + ".f32"), new TorchGenerator(seed).randn(n))));
            tests.add(DynamicTest.dynamicTest(key + ".f64", () ->
                    assertDoubleClose(key, readDoubles(manifest, key + ".f64"), new TorchGenerator(seed).randnDouble(n))));
        }
        tests.add(DynamicTest.dynamicTest("seq draws", () -> checkSamplerSequences(manifest)));
        return tests;
    }

    private static final Pattern SEQ = Pattern.compile("seq_seed(\\d+)_([0-9x]+)\\.draw(\\d+)");

    /** Tensors named seq_seed&lt;S&gt;_&lt;shape&gt;.draw&lt;k&gt;: draw k of consecutive randn calls on one generator. */
    private static void checkSamplerSequences(Path manifest) throws Exception {
        TreeMap<String, TreeMap<Integer, String>> groups = new TreeMap<>();
        try (SafeTensors st = SafeTensors.open(manifest.resolveSibling("torch_randn.safetensors"))) {
            for (String name : st.names()) {
                Matcher m = SEQ.matcher(name);
                if (m.matches()) {
                    groups.computeIfAbsent(m.group(1) + "_" + m.group(2), k -> new TreeMap<>())
                            .put(Integer.parseInt(m.group(3)), name);
                }
            }
            assertTrue(!groups.isEmpty(), "torch_randn.safetensors has seq_* tensors");
            for (var g : groups.entrySet()) {
                String[] parts = g.getKey().split("_");
                TorchGenerator gen = new TorchGenerator(Long.parseLong(parts[0]));
                int n = 1;
                for (String dim : parts[1].split("x")) {
                    n *= Integer.parseInt(dim);
                }
                for (String name : g.getValue().values()) {
                    assertBitExact(name, st.floats(name), gen.randn(n));
                }
            }
        }
    }

    static long seedOf(JsonNode seed) {
        return Long.parseUnsignedLong(seed.asText());
    }

    static int numel(JsonNode shape) {
        int n = 1;
        for (JsonNode d : shape) {
            n *= d.asInt();
        }
        return n;
    }

    private static float[] read(Path manifest, String tensor) {
        try (SafeTensors st = SafeTensors.open(tensorsFile(manifest))) {
            return st.floats(tensor);
        } catch (Exception e) {
            throw new AssertionError("cannot read " + tensor + ": " + e.getMessage(), e);
        }
    }

    private static double[] readDoubles(Path manifest, String tensor) {
        try (SafeTensors st = SafeTensors.open(tensorsFile(manifest))) {
            return st.doubles(tensor);
        } catch (Exception e) {
            throw new AssertionError("cannot read " + tensor + ": " + e.getMessage(), e);
        }
    }

    private static Path tensorsFile(Path manifest) {
        return manifest.resolveSibling(Golden.caseName(manifest) + ".safetensors");
    }

    static void assertBitExact(String what, float[] expected, float[] actual) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(actual[i])) {
                throw new AssertionError(what + ": value " + i + " differs: expected " + expected[i] + ", got "
                        + actual[i]);
            }
        }
    }

    /** float64 goes through the platform's libm in torch; Java's log/sin/cos may differ by an ulp or two. */
    private static void assertDoubleClose(String what, double[] expected, double[] actual) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            double tol = 4 * Math.ulp(Math.abs(expected[i])) + 1e-300;
            if (!(Math.abs(expected[i] - actual[i]) <= tol)) {
                throw new AssertionError(what + ": value " + i + " expected " + expected[i] + ", got " + actual[i]);
            }
        }
    }
}
