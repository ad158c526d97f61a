package jdiffusion.workflow;

import static jdiffusion.workflow.Workflows.link;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngReader;
import jdiffusion.io.SafeTensors;
import jdiffusion.workflow.Values.Image;
import jdiffusion.workflow.Values.Latent;
import jdiffusion.workflow.Values.Mask;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * The ComfyUI inpainting pipelines ({@code pipe_comfy_*inpaint*} in the golden inpaint folder) as the workflows that
 * made them: LoadImage (RGBA: MASK = 1 - alpha) -> VAEEncode + SetLatentNoiseMask, VAEEncodeForInpaint or
 * InpaintModelConditioning -> KSampler -> VAEDecode -> SaveImage, run by the workflow engine on the fp16 checkpoint
 * and on its fp32 twin. Checks LoadImage's mask, the encode node's latent and noise mask, the KSampler output, the
 * decoded image and the saved PNG.
 */
class InpaintWorkflowGoldenTest {
    private static final ObjectMapper LENIENT = new ObjectMapper()
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS.mappedFeature());
    private static final Pattern MODEL = Pattern.compile("models/(\\S+?)\\.safetensors");

    @TempDir
    static Path base;

    @TestFactory
    Stream<DynamicTest> everyComfyInpaintCase() {
        List<DynamicTest> tests = new ArrayList<>();
        for (Path manifest : Golden.manifestsIn("inpaint", "pipe_comfy_")) {
            if (!manifestJson(manifest).path("params").path("workflow").asText().matches(
                    ".*(SetLatentNoiseMask|VAEEncodeForInpaint|InpaintModelConditioning).*")) {
                continue;
            }
            for (String dtype : List.of("fp16", "fp32")) {
                tests.add(DynamicTest.dynamicTest(Golden.caseName(manifest) + " [" + dtype + "]",
                        () -> runCase(manifest, dtype)));
            }
        }
        return tests.stream();
    }

    private static JsonNode manifestJson(Path manifest) {
        try {
            return LENIENT.readTree(manifest.toFile());
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    private static void runCase(Path manifestPath, String dtype) throws Exception {
        String caseName = Golden.caseName(manifestPath);
        JsonNode m = manifestJson(manifestPath);
        JsonNode p = m.path("params");
        Path caseBase = base.resolve(caseName + "-" + dtype);
        Matcher mm = MODEL.matcher(p.path("model").asText());
        if (!mm.find()) {
            throw new AssertionError("no models/<file>.safetensors in the manifest's model");
        }
        Path fp16 = Golden.model(mm.group(1).replaceAll("-fp(16|32)$", "") + "-fp16.safetensors");
        Path folder = caseBase.resolve("models").resolve("checkpoints");
        Files.createDirectories(folder);
        Path ckpt = dtype.equals("fp16") ? Files.copy(fp16, folder.resolve(fp16.getFileName()))
                : Golden.fp32Twin(fp16, folder);
        ModelPaths paths = ModelPaths.of(caseBase);
        Files.copy(manifestPath.resolveSibling(p.path("input_image_png").asText().split("\\s+")[0]),
                paths.inputDir().resolve("in.png"));
        String workflow = p.path("workflow").asText();

        Workflows.Builder b = new Workflows.Builder();
        b.node("4", "CheckpointLoaderSimple", "ckpt_name", ckpt.getFileName().toString());
        b.node("6", "CLIPTextEncode", "text", p.path("prompt").asText(), "clip", link("4", 1));
        b.node("7", "CLIPTextEncode", "text", p.path("negative").asText(""), "clip", link("4", 1));
        b.node("10", "LoadImage", "image", "in.png");
        Workflows.Link positive = link("6", 0);
        Workflows.Link negative = link("7", 0);
        Workflows.Link latent;
        String encoder;
        if (workflow.contains("InpaintModelConditioning")) {
            Matcher nm = Pattern.compile("noise_mask=(True|False)").matcher(workflow);
            boolean noiseMask = !nm.find() || nm.group(1).equals("True");
            b.node("11", "InpaintModelConditioning", "positive", positive, "negative", negative, "vae", link("4", 2),
                    "pixels", link("10", 0), "mask", link("10", 1), "noise_mask", noiseMask);
            positive = link("11", 0);
            negative = link("11", 1);
            latent = link("11", 2);
            encoder = "11";
        } else if (workflow.contains("VAEEncodeForInpaint")) {
            b.node("11", "VAEEncodeForInpaint", "pixels", link("10", 0), "vae", link("4", 2), "mask", link("10", 1),
                    "grow_mask_by", p.path("grow_mask_by").asInt(6));
            latent = link("11", 0);
            encoder = "11";
        } else {
            b.node("11", "VAEEncode", "pixels", link("10", 0), "vae", link("4", 2));
            b.node("12", "SetLatentNoiseMask", "samples", link("11", 0), "mask", link("10", 1));
            latent = link("12", 0);
            encoder = "12";
        }
        b.node("3", "KSampler", "model", link("4", 0), "seed", p.path("seed").asLong(), "steps", p.path("steps").asInt(),
                "cfg", p.path("cfg").asDouble(), "sampler_name", p.path("sampler_name").asText(), "scheduler",
                p.path("scheduler").asText(), "positive", positive, "negative", negative, "latent_image", latent,
                "denoise", p.path("denoise").asDouble(1.0));
        b.node("8", "VAEDecode", "samples", link("3", 0), "vae", link("4", 2));
        b.node("9", "SaveImage", "images", link("8", 0), "filename_prefix", "ComfyUI");
        Prompt prompt = b.build();

        WorkflowEngine.ExecutionResult r;
        try (WorkflowEngine engine = new WorkflowEngine(paths, 1L << 30)) {
            r = engine.execute(prompt, null, null, ExecutionListener.NONE);
        }
        assertEquals(WorkflowEngine.Status.SUCCESS, r.status(), caseName + ": " + r.message());
        try (SafeTensors t = Golden.tensors(manifestPath)) {
            Mask mask = (Mask) r.values().get("10").get(1);
            Golden.assertClose(caseName + " LoadImage MASK", t.floats(m.path("inputs").path("mask").path("tensor")
                    .asText()), mask.values(), 1e-7);
            Latent encoded = (Latent) r.values().get(encoder).get(encoder.equals("11") && workflow.contains(
                    "InpaintModelConditioning") ? 2 : 0);
            if (!workflow.contains("InpaintModelConditioning")) {
                check(caseName, m, t, "vae_encoded", encoded.samples());
            }
            assertNotNull(encoded.noiseMask(), caseName + ": the encode node's latent has a noise mask");
            check(caseName, m, t, "noise_mask", encoded.noiseMask().values());
            Latent sampled = (Latent) r.values().get("3").get(0);
            check(caseName, m, t, "ksampler_output", sampled.samples());
            Image image = (Image) r.values().get("8").get(0);
            check(caseName, m, t, "image01", image.pixels());
        }
        List<Path> saved = Workflows.savedFiles(paths, r.outputs().get("9"));
        assertEquals(1, saved.size());
        PngImage expected = PngReader.read(manifestPath.resolveSibling(p.path("png").path("file").asText()));
        PngImage actual = PngReader.read(saved.getFirst());
        int worst = 0;
        for (int i = 0; i < expected.rgb().length; i++) {
            worst = Math.max(worst, Math.abs((expected.rgb()[i] & 0xFF) - (actual.rgb()[i] & 0xFF)));
        }
        int tolerance = p.path("png").path("recommended_tolerance").asInt(1);
        if (worst > tolerance) {
            throw new AssertionError(caseName + " PNG: max level difference " + worst + " > " + tolerance);
        }
    }

    private static void check(String caseName, JsonNode m, SafeTensors t, String output, float[] actual) {
        JsonNode o = m.path("outputs").path(output);
        double atol = o.path("tolerance").path("atol").asDouble(1e-6);
        Golden.assertClose(caseName + " " + output, t.floats(o.get("tensor").asText()), actual, atol);
    }
}
