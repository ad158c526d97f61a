package jdiffusion.workflow;

import static jdiffusion.workflow.Workflows.link;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.sampling.Samplers;
import jdiffusion.workflow.Values.Latent;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * ComfyUI's KSampler node on an SD3.5 model (CheckpointLoaderSimple on the tiny SD3.5 file, ModelSamplingSD3) takes
 * every sampler name ComfyUI lists: each runs a few steps to a finite LATENT of the right size (decoded and previewed,
 * a prompt needs an output) (the flow forms that
 * need the model's shift, sa_solver and the offset of the first sigma, get it through the node's model sampling).
 * Their values are checked against ComfyUI's functions in {@code FlowSamplersTest}.
 */
class Sd3EverySamplerWorkflowTest {
    @TempDir
    static Path base;
    private static WorkflowEngine engine;
    private static final String CKPT = "tiny-sd35-fp16.safetensors";

    @BeforeAll
    static void setUp() throws Exception {
        Sd3Nodes.setClipHeads(Sd3WorkflowGoldenTest.heads("clip_l"), Sd3WorkflowGoldenTest.heads("clip_g"));
        Workflows.place(base, "checkpoints", CKPT);
        engine = new WorkflowEngine(ModelPaths.of(base), 1L << 30);
    }

    @AfterAll
    static void tearDown() throws Exception {
        Sd3Nodes.setClipHeads(0, 0);
        if (engine != null) {
            engine.close();
        }
    }

    @TestFactory
    Stream<DynamicTest> everySamplerName() {
        assertTrue(Golden.model(CKPT).toFile().isFile(), "tiny SD3.5 checkpoint missing");
        return Samplers.NAMES.stream().map(name -> DynamicTest.dynamicTest(name, () -> run(name)));
    }

    private static void run(String sampler) {
        Workflows.Builder b = new Workflows.Builder();
        b.node("4", "CheckpointLoaderSimple", "ckpt_name", CKPT);
        b.node("6", "CLIPTextEncode", "text", "a lighthouse at dusk", "clip", link("4", 1));
        b.node("7", "CLIPTextEncode", "text", "", "clip", link("4", 1));
        b.node("5", "EmptySD3LatentImage", "width", 64, "height", 64, "batch_size", 1);
        b.node("13", "ModelSamplingSD3", "model", link("4", 0), "shift", 3.0);
        b.node("3", "KSampler", "model", link("13", 0), "seed", 11L, "steps", 3, "cfg", 2.0, "sampler_name",
                sampler, "scheduler", "simple", "positive", link("6", 0), "negative", link("7", 0), "latent_image",
                link("5", 0), "denoise", 1.0);
        b.node("8", "VAEDecode", "samples", link("3", 0), "vae", link("4", 2));
        b.node("9", "PreviewImage", "images", link("8", 0));
        WorkflowEngine.ExecutionResult r = engine.execute(b.build(), null, null, ExecutionListener.NONE);
        assertEquals(WorkflowEngine.Status.SUCCESS, r.status(), sampler + ": " + r.message());
        float[] samples = ((Latent) r.values().get("3").get(0)).samples();
        assertEquals(16 * 8 * 8, samples.length, sampler + ": latent size");
        assertTrue(Arrays.stream(toDoubles(samples)).allMatch(Double::isFinite), sampler + ": non-finite latent");
        assertTrue(Arrays.stream(toDoubles(samples)).anyMatch(v -> v != 0), sampler + ": all-zero latent");
    }

    private static double[] toDoubles(float[] v) {
        double[] out = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = v[i];
        }
        return out;
    }
}
