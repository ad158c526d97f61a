package jdiffusion.workflow;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import jdiffusion.tensor.Ops;
import jdiffusion.workflow.Values.Image;
import jdiffusion.workflow.Values.Latent;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * ComfyUI's scaling nodes against the {@code comfy_latent_upscale_*} and {@code comfy_image_scale_*} goldens: each
 * output's node call ({@code params.calls.<output>.node}, e.g. {@code LatentUpscale(upscale_method='area',
 * width=200, height=136, crop='disabled')}) is parsed and run through the registered node.
 */
class ScaleNodesGoldenTest {
    private static final Pattern CALL = Pattern.compile("(\\w+)\\((.*)\\)");
    private static final Pattern ARG = Pattern.compile("(\\w+)=('([^']*)'|[-0-9.]+)");

    @TestFactory
    Stream<DynamicTest> latentUpscale() {
        return cases("comfy_latent_upscale_");
    }

    @TestFactory
    Stream<DynamicTest> imageScale() {
        return cases("comfy_image_scale_");
    }

    /**
     * comfy_image_upscale_with_model through the nodes: UpscaleModelLoader finds the model in models/upscale_models,
     * ImageUpscaleWithModel tiles the IMAGE (channels last in the golden) with its fixed tile and overlap.
     */
    @TestFactory
    Stream<DynamicTest> imageUpscaleWithModel(@org.junit.jupiter.api.io.TempDir Path base) {
        return Golden.manifestsIn("upscale", "comfy_image_upscale_with_model").stream().map(m -> DynamicTest
                .dynamicTest(Golden.caseName(m), () -> {
                    JsonNode json = Golden.json(m);
                    JsonNode node = json.get("params").get("node");
                    org.junit.jupiter.api.Assertions.assertEquals(UpscaleNodes.TILE, node.get("tile").asInt());
                    org.junit.jupiter.api.Assertions.assertEquals(UpscaleNodes.OVERLAP, node.get("overlap").asInt());
                    ModelPaths paths = ModelPaths.of(base);
                    Path model = Golden.dir().resolve(json.get("params").get("model_file").asText());
                    java.nio.file.Files.copy(model, paths.folders("upscale_models").getFirst()
                            .resolve(model.getFileName()), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
                    try (ModelCache cache = new ModelCache(1L << 30); SafeTensors t = Golden.tensors(m)) {
                        NodeContext ctx = new NodeContext("1", "p", paths, cache, null, null, ExecutionListener.NONE,
                                new NodeContext.Interrupt());
                        Object ref = Nodes.get("UpscaleModelLoader").function().run(
                                Map.of("model_name", model.getFileName().toString()), ctx).outputs().getFirst();
                        int[] s = Golden.shape(json.get("inputs").get("image"));
                        Image img = new Image(Ops.nhwcToNchw(t.floats(json.get("inputs").get("image").get("tensor")
                                .asText()), s[0], s[3], s[1], s[2]), s[0], s[1], s[2]);
                        Image r = (Image) Nodes.get("ImageUpscaleWithModel").function().run(
                                Map.of("upscale_model", ref, "image", img), ctx).outputs().getFirst();
                        JsonNode out = json.get("outputs").get("image");
                        assertArrayEquals(Golden.shape(out), new int[] {r.batch(), r.height(), r.width(), 3});
                        Golden.assertClose(Golden.caseName(m), t.floats(out.get("tensor").asText()),
                                Ops.nchwToNhwc(r.pixels(), r.batch(), 3, r.height(), r.width()),
                                out.get("tolerance").get("atol").asDouble());
                    }
                }));
    }

    private static Stream<DynamicTest> cases(String prefix) {
        return Golden.manifestsIn("upscale", prefix).stream().flatMap(m -> {
            JsonNode json = Golden.json(m);
            assertFalse(json.get("outputs").isEmpty(), "no outputs in " + m);
            return json.get("outputs").properties().stream().map(o -> DynamicTest.dynamicTest(Golden.caseName(m) + " "
                    + o.getKey(), () -> runOutput(m, json, o.getKey(), o.getValue())));
        });
    }

    /** The call's arguments: quoted strings as String, integers as Long, decimals as Double (widget value types). */
    static Map<String, Object> arguments(String args) {
        Map<String, Object> in = new LinkedHashMap<>();
        Matcher a = ARG.matcher(args);
        while (a.find()) {
            String v = a.group(2);
            in.put(a.group(1), a.group(3) != null ? a.group(3)
                    : v.contains(".") ? (Object) Double.parseDouble(v) : (Object) Long.parseLong(v));
        }
        return in;
    }

    private static void runOutput(Path manifest, JsonNode json, String output, JsonNode spec) throws Exception {
        String call = json.get("params").get("calls").get(output).get("node").asText();
        Matcher c = CALL.matcher(call);
        if (!c.matches()) {
            throw new AssertionError("cannot parse node call " + call);
        }
        NodeDefinition node = Nodes.get(c.group(1));
        if (node == null) {
            throw new AssertionError("node class " + c.group(1) + " is not registered");
        }
        Map<String, Object> in = arguments(c.group(2));
        try (SafeTensors t = Golden.tensors(manifest)) {
            JsonNode inputs = json.get("inputs");
            float[] expected = t.floats(spec.get("tensor").asText());
            int[] shape = Golden.shape(spec);
            float[] actual;
            if (inputs.has("latent")) {
                int[] s = Golden.shape(inputs.get("latent"));
                in.put("samples", new Latent(t.floats(inputs.get("latent").get("tensor").asText()), s[0], s[1], s[2],
                        s[3]));
                Latent r = (Latent) node.function().run(in, null).outputs().getFirst();
                assertArrayEquals(shape, new int[] {r.batch(), r.channels(), r.height(), r.width()}, call);
                actual = r.samples();
            } else {
                int[] s = Golden.shape(inputs.get("image"));
                float[] nchw = Ops.nhwcToNchw(t.floats(inputs.get("image").get("tensor").asText()), s[0], s[3], s[1],
                        s[2]);
                in.put("image", new Image(nchw, s[0], s[1], s[2]));
                Image r = (Image) node.function().run(in, null).outputs().getFirst();
                assertArrayEquals(shape, new int[] {r.batch(), r.height(), r.width(), 3}, call);
                actual = Ops.nchwToNhwc(r.pixels(), r.batch(), 3, r.height(), r.width());
            }
            double atol = spec.get("tolerance").get("atol").asDouble();
            System.out.printf("%s %s: max |diff| %.3g (atol %.3g)%n", Golden.caseName(manifest), output,
                    Golden.maxAbsDiff(expected, actual), atol);
            Golden.assertClose(Golden.caseName(manifest) + " " + output + " " + call, expected, actual, atol);
        }
    }
}
