package jdiffusion.workflow;

import static jdiffusion.workflow.Workflows.link;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngReader;
import jdiffusion.pipeline.CancellationToken;
import jdiffusion.pipeline.GenerateRequest;
import jdiffusion.pipeline.GenerateResult;
import jdiffusion.pipeline.Pipeline;
import jdiffusion.pipeline.ProgressListener;
import jdiffusion.workflow.Values.Image;
import jdiffusion.workflow.WorkflowEngine.ExecutionResult;
import jdiffusion.workflow.WorkflowEngine.Status;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The engine on the tiny SD1 checkpoint: the signature cache (a new seed re-runs only KSampler and what follows),
 * the shared model cache, the event sequence, interruption between sampler steps, node errors, and img2img and
 * LoRA workflows equal to the pipeline library's result for the same settings.
 */
class WorkflowExecutionTest {
    private static final String SD1 = "tiny-sd1-fp16.safetensors";
    private static final String LORA = "tiny-sd1-lora-kohya.safetensors";

    @TempDir
    Path base;

    private static Workflows.Settings settings(long seed) {
        return new Workflows.Settings(SD1, "a red bicycle", "blurry", 64, 64, 1, seed, 3, 6.0, "euler", "normal",
                1.0, null, null, null);
    }

    @Test
    void newSeedRerunsOnlyTheSamplerAndWhatFollows() throws IOException {
        Workflows.place(base, "checkpoints", SD1);
        ModelPaths paths = ModelPaths.of(base);
        try (WorkflowEngine engine = new WorkflowEngine(paths, 1L << 30)) {
            ExecutionResult first = engine.execute(Workflows.txt2img(settings(1)), "p1", null, ExecutionListener.NONE);
            assertEquals(Status.SUCCESS, first.status(), first.message());
            assertEquals(List.of("4", "6", "7", "5", "3", "8", "9"), first.executed());
            long loads = engine.models().loads();

            Workflows.EventLog log = new Workflows.EventLog();
            ExecutionResult second = engine.execute(Workflows.txt2img(settings(2)), "p2", null, log);
            assertEquals(Status.SUCCESS, second.status(), second.message());
            assertEquals(List.of("3", "8", "9"), second.executed());
            assertEquals(List.of("4", "6", "7", "5"), log.cached);
            assertEquals(loads, engine.models().loads(), "no model is loaded again");
            assertEquals(List.of("execution_start", "execution_cached", "executing 3", "progress 3", "executing 8",
                    "executing 9", "executed 9", "execution_success", "executing null"), log.events);
            assertEquals(List.of("1/3", "2/3", "3/3"), log.steps);
            assertEquals("[1, 4, 8, 8]", java.util.Arrays.toString(log.lastShape), "the latent for previews");
            Path f1 = Workflows.savedFiles(paths, first.outputs().get("9")).getFirst();
            Path f2 = Workflows.savedFiles(paths, second.outputs().get("9")).getFirst();
            assertEquals("ComfyUI_00001_.png", f1.getFileName().toString());
            assertEquals("ComfyUI_00002_.png", f2.getFileName().toString());
            assertFalse(PngReader.read(f1).equals(PngReader.read(f2)), "another seed gives another image");

            // the same prompt again: nothing runs, no new file, the ui output is reported again
            Workflows.EventLog again = new Workflows.EventLog();
            ExecutionResult third = engine.execute(Workflows.txt2img(settings(2)), "p3", null, again);
            assertEquals(List.of(), third.executed());
            assertEquals(List.of("4", "6", "7", "5", "3", "8", "9"), again.cached);
            assertTrue(again.events.contains("executed 9"));
            try (Stream<Path> s = Files.list(paths.outputDir())) {
                assertEquals(2, s.count());
            }
        }
    }

    @Test
    void modelsBeyondTheBudgetAreUnloadedAndReloadedWhenNeeded() throws IOException {
        Workflows.place(base, "checkpoints", SD1);
        ModelPaths paths = ModelPaths.of(base);
        try (WorkflowEngine engine = new WorkflowEngine(paths, 1)) { // room for one model at a time
            ExecutionResult first = engine.execute(Workflows.txt2img(settings(1)), null, null, ExecutionListener.NONE);
            assertEquals(Status.SUCCESS, first.status(), first.message());
            assertEquals(1, engine.models().size(), "only the last model used (the VAE) stays loaded");
            long loads = engine.models().loads();
            ExecutionResult second = engine.execute(Workflows.txt2img(settings(2)), null, null,
                    ExecutionListener.NONE);
            assertEquals(Status.SUCCESS, second.status(), second.message());
            assertEquals(List.of("3", "8", "9"), second.executed(), "node outputs stay cached regardless");
            assertEquals(loads + 2, engine.models().loads(), "the UNet is loaded again, then the VAE");
        }
    }

    @Test
    void interruptStopsBetweenSamplerSteps() throws IOException {
        Workflows.place(base, "checkpoints", SD1);
        ModelPaths paths = ModelPaths.of(base);
        try (WorkflowEngine engine = new WorkflowEngine(paths, 1L << 30)) {
            Workflows.EventLog log = new Workflows.EventLog() {
                @Override
                public void progress(String promptId, String nodeId, int value, int max, float[] latent, int[] shape) {
                    super.progress(promptId, nodeId, value, max, latent, shape);
                    engine.interrupt(); // as /interrupt from another thread would, during step 1 of 3
                }
            };
            ExecutionResult r = engine.execute(Workflows.txt2img(settings(5)), "p", null, log);
            assertEquals(Status.INTERRUPTED, r.status());
            assertEquals("3", r.errorNode());
            assertEquals(1, log.progressCalls, "stopped after the first step");
            assertEquals(List.of("4", "6", "7", "5"), r.executed());
            assertEquals("execution_interrupted 3", log.events.get(log.events.size() - 2));
            assertEquals("executing null", log.events.getLast());
            try (Stream<Path> s = Files.list(paths.outputDir())) {
                assertEquals(0, s.count(), "nothing saved");
            }
            // the next prompt runs normally and reuses what finished before the interruption
            ExecutionResult next = engine.execute(Workflows.txt2img(settings(5)), "q", null, ExecutionListener.NONE);
            assertEquals(Status.SUCCESS, next.status(), next.message());
            assertEquals(List.of("3", "8", "9"), next.executed());
        }
    }

    @Test
    void img2imgWorkflowEqualsThePipeline() throws IOException {
        Path ckpt = Workflows.place(base, "checkpoints", SD1);
        ModelPaths paths = ModelPaths.of(base);
        Path init = Golden.dir().resolve("pipe_sd1_img2img_euler.input.png");
        Files.copy(init, paths.inputDir().resolve("init.png"));
        Workflows.Settings s = new Workflows.Settings(SD1, "a watercolor harbor", "dark", 0, 0, 1, 42, 4, 5.5,
                "euler", "normal", 0.6, "init.png", null, null);
        GenerateRequest request = GenerateRequest.builder(ckpt).prompt(s.prompt()).negativePrompt(s.negative())
                .seed(s.seed()).steps(s.steps()).cfg(s.cfg()).sampler(s.sampler()).scheduler(s.scheduler())
                .initImage(init).denoise(s.denoise()).build();
        compareWithPipeline(paths, s, request);
    }

    @Test
    void loraWorkflowEqualsThePipeline() throws IOException {
        Path ckpt = Workflows.place(base, "checkpoints", SD1);
        Path lora = Workflows.place(base, "loras", LORA);
        ModelPaths paths = ModelPaths.of(base);
        Workflows.Settings s = new Workflows.Settings(SD1, "a castle on a hill", "", 64, 64, 1, 9, 3, 7.0, "euler",
                "karras", 1.0, null, List.<String[]>of(new String[] {LORA, "0.8", "0.8"}), null);
        GenerateRequest request = GenerateRequest.builder(ckpt).prompt(s.prompt()).negativePrompt(s.negative())
                .size(64, 64).seed(s.seed()).steps(s.steps()).cfg(s.cfg()).sampler(s.sampler())
                .scheduler(s.scheduler()).loras(List.of(new GenerateRequest.LoraSpec(lora, 0.8))).build();
        ExecutionResult withLora = compareWithPipeline(paths, s, request);
        // and the LoRA changes the image: the same graph without it differs
        try (WorkflowEngine engine = new WorkflowEngine(paths, 1L << 30)) {
            Workflows.Settings plain = new Workflows.Settings(SD1, s.prompt(), s.negative(), 64, 64, 1, 9, 3, 7.0,
                    "euler", "karras", 1.0, null, null, null);
            ExecutionResult r = engine.execute(Workflows.txt2img(plain), null, null, ExecutionListener.NONE);
            assertEquals(Status.SUCCESS, r.status(), r.message());
            double diff = Golden.maxAbsDiff(((Image) r.values().get("8").getFirst()).pixels(),
                    ((Image) withLora.values().get("8").getFirst()).pixels());
            assertTrue(diff > 1e-3, "LoRA at 0.8 changes the image (max diff " + diff + ")");
        }
    }

    private static ExecutionResult compareWithPipeline(ModelPaths paths, Workflows.Settings s,
            GenerateRequest request) throws IOException {
        ExecutionResult r;
        try (WorkflowEngine engine = new WorkflowEngine(paths, 1L << 30)) {
            r = engine.execute(Workflows.txt2img(s), null, null, ExecutionListener.NONE);
        }
        assertEquals(Status.SUCCESS, r.status(), r.message());
        GenerateResult expected = Pipeline.generate(request, ProgressListener.NONE, CancellationToken.none());
        Values.Latent latent = (Values.Latent) r.values().get("3").getFirst();
        float scale = 0.18215f;
        float[] ours = new float[latent.samples().length];
        for (int i = 0; i < ours.length; i++) {
            ours[i] = latent.samples()[i] * scale;
        }
        Golden.assertClose("KSampler latent vs pipeline", expected.latent(), ours, 1e-4);
        Image image = (Image) r.values().get("8").getFirst();
        Golden.assertClose("VAEDecode image vs pipeline", expected.image01(), image.pixels(), 1e-5);
        PngImage saved = PngReader.read(Workflows.savedFiles(paths, r.outputs().get("9")).getFirst());
        PngImage theirs = expected.images().getFirst();
        int worst = 0;
        for (int i = 0; i < saved.rgb().length; i++) {
            worst = Math.max(worst, Math.abs((saved.rgb()[i] & 0xFF) - (theirs.rgb()[i] & 0xFF)));
        }
        assertTrue(worst <= 1, "saved PNG within 1 level of the pipeline's, got " + worst);
        return r;
    }

    @Test
    void nodeFailureIsReportedWithItsNode() throws IOException {
        ModelPaths paths = ModelPaths.of(base);
        Files.copy(Golden.dir().resolve("pipe_sd1_img2img_euler.input.png"), paths.inputDir().resolve("in.png"));
        // a checkpoint in the upscale model folder passes validation and fails when the node loads it
        Workflows.place(base, "upscale_models", "tiny-sd1-fp16.safetensors");
        Prompt bad = new Workflows.Builder()
                .node("1", "LoadImage", "image", "in.png")
                .node("4", "UpscaleModelLoader", "model_name", "tiny-sd1-fp16.safetensors")
                .node("2", "ImageUpscaleWithModel", "upscale_model", link("4", 0), "image", link("1", 0))
                .node("3", "PreviewImage", "images", link("2", 0))
                .build();
        try (WorkflowEngine engine = new WorkflowEngine(paths, 1L << 30)) {
            Workflows.EventLog log = new Workflows.EventLog();
            ExecutionResult r = engine.execute(bad, null, null, log);
            assertEquals(Status.ERROR, r.status());
            assertEquals("2", r.errorNode());
            assertTrue(r.message().contains("not a known upscale model"), r.message());
            assertTrue(log.events.stream().anyMatch(e -> e.startsWith("execution_error 2")), log.events.toString());

            Prompt good = new Workflows.Builder()
                    .node("1", "LoadImage", "image", "in.png")
                    .node("2", "ImageScale", "image", link("1", 0), "upscale_method", "bilinear", "width", 32,
                            "height", 0, "crop", "disabled")
                    .node("3", "PreviewImage", "images", link("2", 0))
                    .build();
            ExecutionResult ok = engine.execute(good, null, null, ExecutionListener.NONE);
            assertEquals(Status.SUCCESS, ok.status(), ok.message());
            assertEquals(List.of("2", "3"), ok.executed(), "LoadImage came from the cache");
            Path preview = Workflows.savedFiles(paths, ok.outputs().get("3")).getFirst();
            assertTrue(preview.startsWith(paths.tempDir()));
            assertTrue(preview.getFileName().toString().matches("ComfyUI_temp_[a-z]{5}_00001_\\.png"),
                    preview.getFileName().toString());
            PngImage in = PngReader.read(paths.inputDir().resolve("in.png"));
            PngImage out = PngReader.read(preview);
            assertEquals(32, out.width());
            assertEquals(Math.round(in.height() * 32.0 / in.width()), out.height(), "height keeps the aspect ratio");
        }
    }
}
