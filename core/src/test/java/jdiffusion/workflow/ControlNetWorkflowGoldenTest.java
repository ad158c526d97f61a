package jdiffusion.workflow;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
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
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * The ComfyUI ControlNet cases ({@code pipe_comfy_*controlnet*}) as the workflow that produced them:
 * CheckpointLoaderSimple -> CLIPTextEncode x2 -> ControlNetLoader + LoadImage(hint) -> ControlNetApplyAdvanced ->
 * EmptyLatentImage -> KSampler -> VAEDecode -> SaveImage; plus the nodes' {@code /object_info} entries.
 */
class ControlNetWorkflowGoldenTest {
    private static final Pattern MODEL = Pattern.compile("models/(\\S+?\\.safetensors)");

    @TempDir
    static Path base;

    @TestFactory
    Stream<DynamicTest> everyComfyControlNetCase() {
        List<DynamicTest> tests = new ArrayList<>();
        for (Path m : Golden.manifestsIn("controlnet", "pipe_comfy_")) {
            if (Golden.caseName(m).contains("controlnet")) {
                tests.add(DynamicTest.dynamicTest(Golden.caseName(m), () -> runCase(m)));
            }
        }
        return tests.stream();
    }

    private static String modelFile(String param) {
        Matcher mm = MODEL.matcher(param);
        if (!mm.find()) {
            throw new AssertionError("no models/<file>.safetensors in '" + param + "'");
        }
        String named = mm.group(1);
        String fp16 = named.replaceAll("-fp(16|32)\\.safetensors$", "-fp16.safetensors");
        return Files.exists(Golden.model(fp16)) ? fp16 : named;
    }

    private static void runCase(Path manifest) throws Exception {
        String name = Golden.caseName(manifest);
        JsonNode m = Golden.json(manifest);
        JsonNode p = m.path("params");
        Path caseBase = base.resolve(name);
        String checkpoint = modelFile(p.path("model").asText());
        String controlNet = modelFile(p.path("controlnet_model").path("file").asText());
        Workflows.place(caseBase, "checkpoints", checkpoint);
        Workflows.place(caseBase, "controlnet", controlNet);
        ModelPaths paths = ModelPaths.of(caseBase);
        Files.copy(manifest.resolveSibling(p.path("hint_png").asText()), paths.inputDir().resolve("hint.png"));
        Workflows.Builder b = new Workflows.Builder();
        b.node("4", "CheckpointLoaderSimple", "ckpt_name", checkpoint);
        b.node("6", "CLIPTextEncode", "text", p.path("prompt").asText(), "clip", Workflows.link("4", 1));
        b.node("7", "CLIPTextEncode", "text", p.path("negative").asText(""), "clip", Workflows.link("4", 1));
        b.node("12", "ControlNetLoader", "control_net_name", controlNet);
        b.node("10", "LoadImage", "image", "hint.png");
        b.node("13", "ControlNetApplyAdvanced", "positive", Workflows.link("6", 0), "negative", Workflows.link("7", 0),
                "control_net", Workflows.link("12", 0), "image", Workflows.link("10", 0),
                "strength", p.path("strength").asDouble(), "start_percent", p.path("start_percent").asDouble(),
                "end_percent", p.path("end_percent").asDouble());
        b.node("5", "EmptyLatentImage", "width", p.path("width").asInt(), "height", p.path("height").asInt(),
                "batch_size", p.path("batch").asInt(1));
        b.node("3", "KSampler", "model", Workflows.link("4", 0), "seed", p.path("seed").asLong(),
                "steps", p.path("steps").asInt(), "cfg", p.path("cfg").asDouble(),
                "sampler_name", p.path("sampler_name").asText(), "scheduler", p.path("scheduler").asText(),
                "positive", Workflows.link("13", 0), "negative", Workflows.link("13", 1),
                "latent_image", Workflows.link("5", 0), "denoise", p.path("denoise").asDouble(1.0));
        b.node("8", "VAEDecode", "samples", Workflows.link("3", 0), "vae", Workflows.link("4", 2));
        b.node("9", "SaveImage", "images", Workflows.link("8", 0), "filename_prefix", "ComfyUI");
        WorkflowEngine.ExecutionResult r;
        try (WorkflowEngine engine = new WorkflowEngine(paths, 1L << 30)) {
            r = engine.execute(b.build(), null, null, ExecutionListener.NONE);
        }
        assertEquals(WorkflowEngine.Status.SUCCESS, r.status(), name + ": " + r.message());
        try (SafeTensors t = Golden.tensors(manifest)) {
            check(name, m, t, "ksampler_output", ((Latent) r.values().get("3").get(0)).samples());
            check(name, m, t, "image01", ((Image) r.values().get("8").get(0)).pixels());
        }
        List<Path> saved = Workflows.savedFiles(paths, r.outputs().get("9"));
        JsonNode files = p.path("png").path("files");
        assertEquals(files.size(), saved.size(), name + " saved files");
        for (int i = 0; i < saved.size(); i++) {
            PngImage expected = PngReader.read(manifest.resolveSibling(files.get(i).asText()));
            PngImage actual = PngReader.read(saved.get(i));
            int worst = 0;
            for (int k = 0; k < expected.rgb().length; k++) {
                worst = Math.max(worst, Math.abs((expected.rgb()[k] & 0xFF) - (actual.rgb()[k] & 0xFF)));
            }
            assertTrue(worst <= p.path("png").path("recommended_tolerance").asInt(1), name + " PNG max level diff "
                    + worst);
        }
    }

    private static void check(String name, JsonNode m, SafeTensors t, String output, float[] actual) {
        JsonNode o = m.path("outputs").path(output);
        Golden.assertClose(name + " " + output, t.floats(o.get("tensor").asText()), actual,
                o.path("tolerance").path("atol").asDouble());
    }

    /** ComfyUI's INPUT_TYPES of the five nodes: names, order, types, defaults and ranges. */
    @Test
    void objectInfoMatchesComfyUi(@TempDir Path dir) throws Exception {
        ModelPaths paths = ModelPaths.of(dir);
        Files.writeString(dir.resolve("models/controlnet/cn.safetensors"), "x");
        ObjectNode info = Nodes.objectInfo(paths);
        ObjectMapper json = new ObjectMapper();
        assertEquals(json.readTree("{\"control_net_name\":[[\"cn.safetensors\"]]}"),
                info.path("ControlNetLoader").path("input").path("required"));
        assertEquals("[\"CONTROL_NET\"]", info.path("ControlNetLoader").path("output").toString());
        assertEquals(json.readTree("{\"model\":[\"MODEL\"],\"control_net_name\":[[\"cn.safetensors\"]]}"),
                info.path("DiffControlNetLoader").path("input").path("required"));
        assertEquals(json.readTree("{\"conditioning\":[\"CONDITIONING\"],\"control_net\":[\"CONTROL_NET\"],"
                        + "\"image\":[\"IMAGE\"],\"strength\":[\"FLOAT\",{\"default\":1.0,\"min\":0.0,\"max\":10.0,"
                        + "\"step\":0.01}]}"),
                info.path("ControlNetApply").path("input").path("required"));
        JsonNode adv = info.path("ControlNetApplyAdvanced");
        assertEquals(json.readTree("{\"positive\":[\"CONDITIONING\"],\"negative\":[\"CONDITIONING\"],"
                        + "\"control_net\":[\"CONTROL_NET\"],\"image\":[\"IMAGE\"],"
                        + "\"strength\":[\"FLOAT\",{\"default\":1.0,\"min\":0.0,\"max\":10.0,\"step\":0.01}],"
                        + "\"start_percent\":[\"FLOAT\",{\"default\":0.0,\"min\":0.0,\"max\":1.0,\"step\":0.001}],"
                        + "\"end_percent\":[\"FLOAT\",{\"default\":1.0,\"min\":0.0,\"max\":1.0,\"step\":0.001}]}"),
                adv.path("input").path("required"));
        assertEquals("{\"vae\":[\"VAE\"]}", adv.path("input").path("optional").toString());
        assertEquals("[\"positive\",\"negative\"]", adv.path("output_name").toString());
        assertEquals("[\"CONDITIONING\",\"CONDITIONING\"]", adv.path("output").toString());
        assertEquals(json.readTree("{\"image\":[\"IMAGE\"],"
                        + "\"low_threshold\":[\"FLOAT\",{\"default\":0.4,\"min\":0.01,\"max\":0.99,\"step\":0.01}],"
                        + "\"high_threshold\":[\"FLOAT\",{\"default\":0.8,\"min\":0.01,\"max\":0.99,\"step\":0.01}]}"),
                info.path("Canny").path("input").path("required"));
        assertEquals("image/preprocessors", info.path("Canny").path("category").asText());
    }
}
