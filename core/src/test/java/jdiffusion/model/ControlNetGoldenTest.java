package jdiffusion.model;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.ControlNetWeights;
import jdiffusion.io.DType;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngReader;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.SafeTensorsWriter;
import jdiffusion.io.Weights;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every {@code controlnet_*_forward} golden case: one ControlNet forward (residuals x scale, every skip and the middle
 * block) and the UNet forward with them added, for each layout the manifest names (original {@code control_model.*}
 * and diffusers) and each weight path (the fp16 file as shipped, its fp32 twin).
 */
class ControlNetGoldenTest {
    private static final Pattern MODEL = Pattern.compile("models/(\\S+?\\.safetensors)");

    @TestFactory
    Stream<DynamicTest> everyForwardCase(@TempDir Path tmp) {
        List<DynamicTest> tests = new ArrayList<>();
        for (Path m : Golden.manifestsIn("controlnet", "controlnet_")) {
            JsonNode files = Golden.json(m).get("params").get("controlnet_model");
            for (Map.Entry<String, JsonNode> layout : files.properties()) {
                if (!layout.getKey().endsWith("_layout")) {
                    continue;
                }
                for (String dtype : List.of("fp16", "fp32")) {
                    tests.add(DynamicTest.dynamicTest(Golden.caseName(m) + " [" + layout.getKey() + ", " + dtype + "]",
                            () -> runCase(m, modelFile(layout.getValue().asText()), dtype, tmp)));
                }
            }
        }
        return tests.stream();
    }

    static Path modelFile(String param) {
        Matcher mm = MODEL.matcher(param);
        if (!mm.find()) {
            throw new AssertionError("no models/<file>.safetensors in '" + param + "'");
        }
        return Golden.model(mm.group(1));
    }

    /** The fp32 copy of a golden file (same values) written by the project's writer: the F32 loading path. */
    static Path fp32(Path fp16, Path dir) throws Exception {
        Path twin = dir.resolve(fp16.getFileName().toString().replace("-fp16.", "-fp32."));
        if (!Files.exists(twin)) {
            try (SafeTensors src = SafeTensors.open(fp16)) {
                SafeTensorsWriter.convert(src, twin, DType.F32, false);
            }
        }
        try (SafeTensors check = SafeTensors.open(twin)) {
            for (String n : check.names()) {
                if (check.info(n).dtype() != DType.F32 && check.info(n).dtype() != DType.I64) {
                    throw new AssertionError(twin + ": tensor " + n + " is " + check.info(n).dtype());
                }
            }
        }
        return twin;
    }

    private static void runCase(Path manifest, Path controlFile, String dtype, Path tmp) throws Exception {
        String name = Golden.caseName(manifest);
        JsonNode json = Golden.json(manifest);
        JsonNode params = json.get("params");
        JsonNode inputs = json.get("inputs");
        JsonNode outputs = json.get("outputs");
        Path baseFile = modelFile(params.get("controlnet_model").get("base_model").asText());
        Path cnFile = dtype.equals("fp16") ? controlFile : fp32(controlFile, tmp);
        Path unetFile = dtype.equals("fp16") ? baseFile : fp32(baseFile, tmp);
        Map<Integer, Integer> heads = UNetGoldenTest.referenceHeads(params.get("controlnet_config"));
        try (SafeTensors cnTensors = SafeTensors.open(cnFile);
             SafeTensors base = SafeTensors.open(unetFile);
             SafeTensors t = Golden.tensors(manifest)) {
            Weights cnWeights = ControlNetWeights.of(cnTensors);
            DType stored = cnTensors.info(cnTensors.names().iterator().next()).dtype();
            assertEquals(dtype.equals("fp16") ? DType.F16 : DType.F32, stored, name + " weight path");
            ControlNet cn = ControlNet.load(cnWeights, heads::get);
            UNet unet = UNet.load(Weights.prefixed(base, "model.diffusion_model."), heads::get);
            assertEquals(true, cn.config().fits(unet.config()), name + ": " + cn.config() + " vs " + unet.config());

            int[] xs = Golden.shape(inputs.get("x"));
            int batch = xs[0];
            int h = xs[2];
            int w = xs[3];
            float[] x = t.floats(inputs.get("x").get("tensor").asText());
            int tokens = Golden.shape(inputs.get("context"))[1];
            float[] context = t.floats(inputs.get("context").get("tensor").asText());
            float[] timesteps = new float[batch];
            java.util.Arrays.fill(timesteps, (float) params.get("timestep").asDouble());
            assertEquals(t.floats(inputs.get("timestep").get("tensor").asText())[0], timesteps[0], 0f);
            float[] y = null;
            if (inputs.has("text_embeds")) {
                y = UNet.sdxlAdm(t.floats(inputs.get("text_embeds").get("tensor").asText()), batch,
                        t.floats(inputs.get("time_ids").get("tensor").asText()));
            }
            int[] hs = Golden.shape(inputs.get("hint"));
            float[] hint = t.floats(inputs.get("hint").get("tensor").asText());
            // the hint PNG read as the pipelines read it gives exactly the reference's hint tensor
            PngImage png = PngReader.read(manifest.resolveSibling(params.get("hint_png").asText()));
            Golden.assertClose(name + " hint from PNG", hint, jdiffusion.pipeline.ControlHint.unitFloats(png), 0);

            ControlNet.Hint g = cn.encodeHint(hint, hs[0], hs[2], hs[3]);
            float scale = (float) params.get("conditioning_scale").asDouble();
            ControlResiduals r = cn.forward(x, batch, h, w, timesteps, context, tokens, y, g, scale);
            JsonNode shapes = params.get("down_res_shapes");
            assertEquals(shapes.size(), r.down().size(), name + " residual count");
            for (int i = 0; i < r.down().size(); i++) {
                check(name, outputs, t, "down_res." + i, r.down().get(i).nchw());
            }
            check(name, outputs, t, "mid_res", r.mid().nchw());
            check(name, outputs, t, "eps", unet.forwardWithControl(x, batch, h, w, timesteps, context, tokens, y, r));
            check(name, outputs, t, "eps_no_control", unet.forward(x, batch, h, w, timesteps, context, tokens, y));
        }
    }

    private static void check(String name, JsonNode outputs, SafeTensors t, String output, float[] actual) {
        JsonNode o = outputs.get(output);
        double atol = o.get("tolerance").get("atol").asDouble();
        float[] expected = t.floats(o.get("tensor").asText());
        System.out.printf("%s %s: max |diff| %.3g (atol %.3g)%n", name, output, Golden.maxAbsDiff(expected, actual), atol);
        Golden.assertClose(name + " " + output, expected, actual, atol);
    }
}
