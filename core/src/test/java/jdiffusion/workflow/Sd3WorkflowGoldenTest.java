package jdiffusion.workflow;

import static jdiffusion.workflow.Workflows.link;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.DType;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngReader;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.SafeTensorsWriter;
import jdiffusion.workflow.Values.Image;
import jdiffusion.workflow.Values.Latent;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every {@code pipe_comfy_sd35_*} case as a ComfyUI workflow run by the engine: CheckpointLoaderSimple on the SD3.5
 * file, CLIPTextEncode x2, EmptySD3LatentImage, ModelSamplingSD3, KSampler, VAEDecode, SaveImage (the KSampler's
 * LATENT equals {@code ksampler_output}, the IMAGE {@code image01}, the PNG the golden one); and the same with the
 * text encoders as three separate files through TripleCLIPLoader + CLIPTextEncodeSD3 (same text for all three).
 */
class Sd3WorkflowGoldenTest {
    @TempDir
    static Path base;

    @BeforeAll
    static void tinyClipHeads() {
        // the tiny CLIPs' heads are 8 wide (every real CLIP's are 64): from the text-encoder manifests
        Sd3Nodes.setClipHeads(heads("clip_l"), heads("clip_g"));
    }

    @AfterAll
    static void resetClipHeads() {
        Sd3Nodes.setClipHeads(0, 0);
    }

    static int heads(String clip) {
        return Golden.json(Golden.manifestsIn("sd35", "textenc_sd35_" + clip).getFirst()).get("params")
                .get("config").get("num_attention_heads").asInt();
    }

    @TestFactory
    Stream<DynamicTest> everySd35ComfyCase() {
        return Golden.manifestsIn("sd35", "pipe_comfy_sd35").stream().flatMap(m -> Stream.of(
                DynamicTest.dynamicTest(Golden.caseName(m), () -> run(m, false, "EmptySD3LatentImage")),
                DynamicTest.dynamicTest(Golden.caseName(m) + " (TripleCLIPLoader)",
                        () -> run(m, true, "EmptySD3LatentImage")),
                // ComfyUI's fix_empty_latent_channels: SD1's 4-channel empty latent becomes SD3's 16 zeros, so graphs
                // built for SD1/SDXL (the A1111 and OpenAI endpoints') run SD3 files unchanged
                DynamicTest.dynamicTest(Golden.caseName(m) + " (EmptyLatentImage)",
                        () -> run(m, false, "EmptyLatentImage"))));
    }

    private static void run(Path manifest, boolean triple, String emptyLatent) throws Exception {
        String name = Golden.caseName(manifest) + (triple ? "-triple" : "")
                + (emptyLatent.equals("EmptyLatentImage") ? "-empty4" : "");
        JsonNode m = Golden.json(manifest);
        JsonNode p = m.path("params");
        Path caseBase = base.resolve(name);
        String ckpt = Path.of(p.path("model").asText().split(" ")[0]).getFileName().toString();
        Workflows.place(caseBase, "checkpoints", ckpt);
        ModelPaths paths = ModelPaths.of(caseBase);
        Workflows.Builder b = new Workflows.Builder();
        b.node("4", "CheckpointLoaderSimple", "ckpt_name", ckpt);
        if (triple) {
            splitTextEncoders(Golden.model(ckpt), caseBase.resolve("models/text_encoders"));
            b.node("11", "TripleCLIPLoader", "clip_name1", "t5xxl.safetensors", "clip_name2", "clip_g.safetensors",
                    "clip_name3", "clip_l.safetensors");
            for (String[] t : List.of(new String[] {"6", p.path("prompt").asText()},
                    new String[] {"7", p.path("negative").asText()})) {
                b.node(t[0], "CLIPTextEncodeSD3", "clip", link("11", 0), "clip_l", t[1], "clip_g", t[1], "t5xxl",
                        t[1], "empty_padding", "none");
            }
        } else {
            b.node("6", "CLIPTextEncode", "text", p.path("prompt").asText(), "clip", link("4", 1));
            b.node("7", "CLIPTextEncode", "text", p.path("negative").asText(), "clip", link("4", 1));
        }
        b.node("5", emptyLatent, "width", p.path("width").asInt(), "height", p.path("height").asInt(),
                "batch_size", p.path("batch").asInt(1));
        b.node("13", "ModelSamplingSD3", "model", link("4", 0), "shift",
                p.path("model_sampling").path("shift").asDouble());
        b.node("3", "KSampler", "model", link("13", 0), "seed", p.path("seed").asLong(), "steps",
                p.path("steps").asInt(), "cfg", p.path("cfg").asDouble(), "sampler_name",
                p.path("sampler_name").asText(), "scheduler", p.path("scheduler").asText(), "positive", link("6", 0),
                "negative", link("7", 0), "latent_image", link("5", 0), "denoise", p.path("denoise").asDouble(1.0));
        b.node("8", "VAEDecode", "samples", link("3", 0), "vae", link("4", 2));
        b.node("9", "SaveImage", "images", link("8", 0), "filename_prefix", "ComfyUI");
        Prompt prompt = b.build();
        WorkflowEngine.ExecutionResult r;
        try (WorkflowEngine engine = new WorkflowEngine(paths, 1L << 30)) {
            r = engine.execute(prompt, null, null, ExecutionListener.NONE);
        }
        assertEquals(WorkflowEngine.Status.SUCCESS, r.status(), name + ": " + r.message());
        try (SafeTensors t = Golden.tensors(manifest)) {
            check(name, m, t, "ksampler_output", ((Latent) r.values().get("3").get(0)).samples());
            check(name, m, t, "image01", ((Image) r.values().get("8").get(0)).pixels());
        }
        List<Path> saved = Workflows.savedFiles(paths, r.outputs().get("9"));
        assertEquals(1, saved.size());
        PngImage expected = PngReader.read(manifest.resolveSibling(p.path("png").path("file").asText()));
        PngImage actual = PngReader.read(saved.getFirst());
        int worst = 0;
        for (int i = 0; i < expected.rgb().length; i++) {
            worst = Math.max(worst, Math.abs((expected.rgb()[i] & 0xFF) - (actual.rgb()[i] & 0xFF)));
        }
        assertTrue(worst <= p.path("png").path("recommended_tolerance").asInt(2), name + " PNG differs by " + worst);
    }

    /** clip_l / clip_g / t5xxl of the checkpoint as three files, in the layouts of the released ones. */
    private static void splitTextEncoders(Path ckpt, Path dir) throws Exception {
        Files.createDirectories(dir);
        try (SafeTensors f = SafeTensors.open(ckpt)) {
            for (String te : List.of("clip_l", "clip_g", "t5xxl")) {
                Path out = dir.resolve(te + ".safetensors");
                if (Files.exists(out)) {
                    continue;
                }
                String prefix = "text_encoders." + te + ".transformer.";
                SafeTensorsWriter w = SafeTensorsWriter.to(out);
                for (String n : f.names()) {
                    if (n.startsWith(prefix)) {
                        w.addFrom(f, n, n.substring(prefix.length()), DType.F16);
                    }
                }
                w.write();
            }
        }
    }

    private static void check(String name, JsonNode m, SafeTensors t, String output, float[] actual) {
        JsonNode o = m.path("outputs").path(output);
        Golden.assertClose(name + " " + output, t.floats(o.get("tensor").asText()), actual,
                o.path("tolerance").path("atol").asDouble());
    }
}
