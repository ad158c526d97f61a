package jdiffusion.workflow;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngReader;
import jdiffusion.io.SafeTensors;
import jdiffusion.workflow.Values.Image;
import jdiffusion.workflow.Values.Latent;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every {@code pipe_comfy_*} case as the ComfyUI workflow that produced it (CheckpointLoaderSimple -> CLIPTextEncode
 * x2 -> EmptyLatentImage or LoadImage + VAEEncode -> KSampler -> VAEDecode -> SaveImage), run by the workflow engine
 * from a temporary base dir holding the tiny checkpoint: the KSampler's LATENT equals {@code ksampler_output}, the
 * VAEDecode IMAGE equals {@code image01}, and each saved PNG equals the golden PNG within the manifest's recommended
 * tolerance and carries the workflow in its {@code prompt} chunk.
 */
class WorkflowGoldenTest {
    private static final ObjectMapper LENIENT = new ObjectMapper()
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS.mappedFeature());
    private static final Pattern MODEL = Pattern.compile("models/(\\S+?)\\.safetensors");

    @TempDir
    static Path base;

    @TestFactory
    Stream<DynamicTest> everyComfyCase() {
        List<DynamicTest> tests = new ArrayList<>();
        for (Path manifest : Golden.manifests("pipe_comfy_")) {
            if (Golden.json(manifest).path("params").path("workflow").asText().matches(
                    ".*(SetLatentNoiseMask|VAEEncodeForInpaint|InpaintModelConditioning).*")) {
                continue; // masked workflows are InpaintWorkflowGoldenTest's
            }
            tests.add(DynamicTest.dynamicTest(Golden.caseName(manifest), () -> runCase(manifest)));
        }
        return tests.stream();
    }

    private static void runCase(Path manifestPath) throws Exception {
        String caseName = Golden.caseName(manifestPath);
        JsonNode m = LENIENT.readTree(manifestPath.toFile());
        JsonNode p = m.path("params");
        Path caseBase = base.resolve(caseName);
        String checkpoint = checkpointFile(p.path("model").asText());
        Workflows.place(caseBase, "checkpoints", checkpoint);
        ModelPaths paths = ModelPaths.of(caseBase);
        String inputImage = null;
        for (String key : List.of("input_image_png", "input_image", "image")) {
            if (p.hasNonNull(key)) {
                inputImage = "init.png";
                Files.copy(manifestPath.resolveSibling(p.get(key).asText()), paths.inputDir().resolve(inputImage));
            }
        }
        String prediction = p.path("model_sampling").path("prediction").asText("EPS").toUpperCase(Locale.ROOT);
        String sampling = switch (prediction) {
            case "V", "V_PREDICTION" -> "v_prediction";
            case "X0", "SAMPLE" -> "x0";
            default -> null;
        };
        Prompt prompt = Workflows.txt2img(new Workflows.Settings(checkpoint, p.path("prompt").asText(),
                p.path("negative").asText(""), p.path("width").asInt(), p.path("height").asInt(),
                p.path("batch").asInt(1), p.path("seed").asLong(), p.path("steps").asInt(), p.path("cfg").asDouble(),
                p.path("sampler_name").asText(), p.path("scheduler").asText(), p.path("denoise").asDouble(1.0),
                inputImage, null, sampling));
        WorkflowEngine.ExecutionResult r;
        try (WorkflowEngine engine = new WorkflowEngine(paths, 1L << 30)) {
            r = engine.execute(prompt, null, null, ExecutionListener.NONE);
        }
        assertEquals(WorkflowEngine.Status.SUCCESS, r.status(), caseName + ": " + r.message());
        try (SafeTensors t = Golden.tensors(manifestPath)) {
            Latent latent = (Latent) r.values().get("3").get(0);
            check(caseName, m, t, "ksampler_output", latent.samples());
            Image image = (Image) r.values().get("8").get(0);
            check(caseName, m, t, "image01", image.pixels());
        }
        List<Path> saved = Workflows.savedFiles(paths, r.outputs().get("9"));
        JsonNode png = p.path("png");
        assertEquals(png.path("files").size(), saved.size(), caseName + " saved files");
        for (int i = 0; i < saved.size(); i++) {
            assertEquals(String.format("ComfyUI_%05d_.png", i + 1), saved.get(i).getFileName().toString());
            checkPng(caseName, manifestPath.resolveSibling(png.path("files").get(i).asText()), saved.get(i),
                    png.path("recommended_tolerance").asInt(1));
            JsonNode stored = new ObjectMapper().readTree(PngReader.text(saved.get(i)).get("prompt"));
            assertEquals(prompt.json().toString(), stored.toString(), caseName + " PNG prompt chunk");
        }
    }

    /**
     * The shipped file of the manifest's model: its fp16 file when there is one (fp16 and fp32 files hold the same
     * values), else the file the manifest names.
     */
    private static String checkpointFile(String modelParam) {
        Matcher mm = MODEL.matcher(modelParam);
        if (!mm.find()) {
            throw new AssertionError("no models/<file>.safetensors in manifest model '" + modelParam + "'");
        }
        String fp16 = mm.group(1).replaceAll("-fp(16|32)$", "") + "-fp16.safetensors";
        return Files.exists(Golden.model(fp16)) ? fp16 : mm.group(1) + ".safetensors";
    }

    private static void check(String caseName, JsonNode m, SafeTensors t, String output, float[] actual) {
        JsonNode o = m.path("outputs").path(output);
        double atol = o.path("tolerance").path("atol").asDouble(1e-5);
        Golden.assertClose(caseName + " " + output, t.floats(o.get("tensor").asText()), actual, atol);
    }

    private static void checkPng(String caseName, Path golden, Path ours, int tolerance) throws IOException {
        PngImage expected = PngReader.read(golden);
        PngImage actual = PngReader.read(ours);
        assertEquals(expected.width(), actual.width(), caseName + " PNG width");
        assertEquals(expected.height(), actual.height(), caseName + " PNG height");
        int worst = 0;
        for (int i = 0; i < expected.rgb().length; i++) {
            worst = Math.max(worst, Math.abs((expected.rgb()[i] & 0xFF) - (actual.rgb()[i] & 0xFF)));
        }
        if (worst > tolerance) {
            throw new AssertionError(caseName + " PNG " + ours.getFileName() + ": max level difference " + worst
                    + " > " + tolerance);
        }
    }
}
