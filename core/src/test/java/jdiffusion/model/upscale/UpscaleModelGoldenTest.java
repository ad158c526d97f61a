package jdiffusion.model.upscale;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.DType;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.SafeTensorsWriter;
import jdiffusion.tensor.Ops;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * The ESRGAN-family goldens: every {@code esrgan_*} case (one spandrel call: clamped {@code output} and unclamped
 * {@code raw}), {@code comfy_tiled_scale_small_tiles} (tiled_scale with the tiles of its call) and
 * {@code comfy_image_upscale_with_model} (ImageUpscaleWithModel's 512 / 32 tiling, channels last), each on the fp16
 * file as shipped and on its fp32 twin.
 */
class UpscaleModelGoldenTest {

    @TestFactory
    Stream<DynamicTest> spandrelCalls() {
        return Golden.manifestsIn("upscale", "esrgan_").stream()
                .map(m -> DynamicTest.dynamicTest(Golden.caseName(m), () -> spandrelCase(m, modelOf(m))));
    }

    @TestFactory
    Stream<DynamicTest> spandrelCallsOnTheFp32Twin(@TempDir Path tmp) {
        return Golden.manifestsIn("upscale", "esrgan_").stream()
                .map(m -> DynamicTest.dynamicTest(Golden.caseName(m), () -> spandrelCase(m, fp32Twin(modelOf(m), tmp))));
    }

    /** Cases whose manifest names a PyTorch twin (params.pth_file: the same weights in float32) run on it too. */
    @TestFactory
    Stream<DynamicTest> spandrelCallsOnThePthTwin() {
        return Golden.manifestsIn("upscale", "esrgan_").stream()
                .filter(m -> Golden.json(m).get("params").has("pth_file"))
                .map(m -> DynamicTest.dynamicTest(Golden.caseName(m), () -> spandrelCase(m, Golden.dir().resolve(
                        Golden.json(m).get("params").get("pth_file").asText().split(" ")[0]))));
    }

    @TestFactory
    Stream<DynamicTest> tiledScale(@TempDir Path tmp) {
        return Stream.concat(Golden.manifestsIn("upscale", "comfy_tiled_scale").stream(),
                Golden.manifestsIn("upscale", "comfy_image_upscale_with_model").stream())
                .flatMap(m -> Stream.of(
                        DynamicTest.dynamicTest(Golden.caseName(m), () -> tiledCase(m, modelOf(m))),
                        DynamicTest.dynamicTest(Golden.caseName(m) + " fp32", () -> tiledCase(m,
                                fp32Twin(modelOf(m), tmp)))));
    }

    static Path modelOf(Path manifest) {
        return Golden.dir().resolve(Golden.json(manifest).get("params").get("model_file").asText());
    }

    /** The F32 copy of an fp16 model (same values: the goldens' weights are fp16-representable). */
    static Path fp32Twin(Path fp16, Path dir) throws Exception {
        Path twin = dir.resolve(fp16.getFileName().toString().replace("-fp16.", "-fp32."));
        if (!Files.exists(twin)) {
            try (SafeTensors src = SafeTensors.open(fp16)) {
                SafeTensorsWriter.convert(src, twin, DType.F32, false);
            }
        }
        try (SafeTensors check = SafeTensors.open(twin)) {
            for (String n : check.names()) {
                assertEquals(DType.F32, check.info(n).dtype(), twin + " " + n);
            }
        }
        return twin;
    }

    private static void spandrelCase(Path manifest, Path model) throws Exception {
        JsonNode json = Golden.json(manifest);
        JsonNode spandrel = json.get("params").get("spandrel");
        UpscaleModel m = UpscaleModel.open(model);
        assertEquals(spandrel.get("architecture_id").asText(), m.architecture());
        assertEquals(spandrel.get("scale").asInt(), m.scale());
        assertEquals(spandrel.get("input_channels").asInt(), m.inChannels());
        assertEquals(spandrel.get("output_channels").asInt(), m.outChannels());
        JsonNode req = spandrel.get("size_requirements");
        assertEquals(req.get("minimum").asInt(), m.sizeRequirements().minimum());
        assertEquals(req.get("multiple_of").asInt(), m.sizeRequirements().multipleOf());
        java.util.List<String> tags = new java.util.ArrayList<>();
        spandrel.get("tags").forEach(t -> tags.add(t.asText()));
        assertEquals(tags, m.tags());
        JsonNode input = json.get("inputs").get("image");
        int[] s = Golden.shape(input);
        try (SafeTensors t = Golden.tensors(manifest)) {
            float[] image = t.floats(input.get("tensor").asText());
            assertFalse(json.get("outputs").isEmpty());
            for (Map.Entry<String, JsonNode> out : json.get("outputs").properties()) {
                boolean clamp = switch (out.getKey()) {
                    case "output" -> true;
                    case "raw" -> false;
                    default -> throw new AssertionError("unknown output " + out.getKey());
                };
                float[] actual = new float[0];
                for (int b = 0; b < s[0]; b++) {
                    int n = s[1] * s[2] * s[3];
                    float[] one = m.upscale(java.util.Arrays.copyOfRange(image, b * n, (b + 1) * n), s[2], s[3],
                            clamp);
                    float[] joined = java.util.Arrays.copyOf(actual, actual.length + one.length);
                    System.arraycopy(one, 0, joined, actual.length, one.length);
                    actual = joined;
                }
                check(manifest, out, t, actual);
            }
        }
    }

    private static void check(Path manifest, Map.Entry<String, JsonNode> out, SafeTensors t, float[] actual) {
        float[] expected = t.floats(out.getValue().get("tensor").asText());
        double atol = out.getValue().get("tolerance").get("atol").asDouble();
        System.out.printf("%s %s: max |diff| %.3g (atol %.3g)%n", Golden.caseName(manifest), out.getKey(),
                Golden.maxAbsDiff(expected, actual), atol);
        Golden.assertClose(Golden.caseName(manifest) + " " + out.getKey(), expected, actual, atol);
    }

    private static int param(String call, String name) {
        Matcher m = Pattern.compile("\\b" + name + "=(\\d+)").matcher(call);
        if (!m.find()) {
            throw new AssertionError("no " + name + " in " + call);
        }
        return Integer.parseInt(m.group(1));
    }

    private static void tiledCase(Path manifest, Path model) throws Exception {
        JsonNode json = Golden.json(manifest);
        JsonNode params = json.get("params");
        UpscaleModel m = UpscaleModel.open(model);
        int tileX;
        int tileY;
        int overlap;
        boolean channelsLast;
        if (params.has("call")) {
            String call = params.get("call").asText();
            tileX = param(call, "tile_x");
            tileY = param(call, "tile_y");
            overlap = param(call, "overlap");
            assertEquals(param(call, "upscale_amount"), m.scale());
            channelsLast = false;
        } else {
            JsonNode node = params.get("node");
            tileX = node.get("tile").asInt();
            tileY = tileX;
            overlap = node.get("overlap").asInt();
            assertEquals(node.get("scale").asInt(), m.scale());
            channelsLast = true;
        }
        JsonNode input = json.get("inputs").get("image");
        int[] s = Golden.shape(input);
        int b = s[0];
        int h = channelsLast ? s[1] : s[2];
        int w = channelsLast ? s[2] : s[3];
        try (SafeTensors t = Golden.tensors(manifest)) {
            float[] image = t.floats(input.get("tensor").asText());
            if (channelsLast) {
                image = Ops.nhwcToNchw(image, b, 3, h, w);
            }
            float[] out = m.upscaleTiled(image, b, h, w, tileX, tileY, overlap);
            for (int i = 0; i < out.length; i++) {
                out[i] = Math.min(1f, Math.max(0f, out[i]));
            }
            if (channelsLast) {
                out = Ops.nchwToNhwc(out, b, 3, h * m.scale(), w * m.scale());
            }
            for (Map.Entry<String, JsonNode> o : json.get("outputs").properties()) {
                check(manifest, o, t, out);
            }
        }
    }
}
