package jdiffusion.workflow;

import static jdiffusion.workflow.Workflows.link;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import jdiffusion.Golden;
import jdiffusion.pipeline.CancellationToken;
import jdiffusion.pipeline.GenerateRequest;
import jdiffusion.pipeline.GenerateResult;
import jdiffusion.pipeline.Pipeline;
import jdiffusion.pipeline.ProgressListener;
import jdiffusion.workflow.Values.Image;
import jdiffusion.workflow.Values.Latent;
import jdiffusion.workflow.WorkflowEngine.ExecutionResult;
import jdiffusion.workflow.WorkflowEngine.Status;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The less common nodes on the tiny SD1 checkpoint: KSamplerAdvanced, hires-fix graphs, clip skip, tiled decode. */
class WorkflowNodesTest {
    private static final String SD1 = "tiny-sd1-fp16.safetensors";

    @TempDir
    Path base;

    /** Loader, two prompts and a 64x64 empty latent: nodes 4, 6, 7, 5. */
    private static Workflows.Builder start() {
        return new Workflows.Builder()
                .node("4", "CheckpointLoaderSimple", "ckpt_name", SD1)
                .node("6", "CLIPTextEncode", "text", "a lighthouse", "clip", link("4", 1))
                .node("7", "CLIPTextEncode", "text", "fog", "clip", link("4", 1))
                .node("5", "EmptyLatentImage", "width", 64, "height", 64, "batch_size", 1);
    }

    private static Object[] advanced(String model, String latent, String addNoise, int start, int end,
            String leftover) {
        return new Object[] {"model", link(model, 0), "add_noise", addNoise, "noise_seed", 77L, "steps", 4, "cfg",
            4.0, "sampler_name", "euler", "scheduler", "normal", "positive", link("6", 0), "negative", link("7", 0),
            "latent_image", link(latent, 0), "start_at_step", start, "end_at_step", end,
            "return_with_leftover_noise", leftover};
    }

    private ExecutionResult run(WorkflowEngine engine, Workflows.Builder b) {
        ExecutionResult r = engine.execute(b.build(), null, null, ExecutionListener.NONE);
        assertEquals(Status.SUCCESS, r.status(), r.message());
        return r;
    }

    private static float[] latentOf(ExecutionResult r, String id) {
        return ((Latent) r.values().get(id).getFirst()).samples();
    }

    @Test
    void ksamplerAdvancedMatchesKSamplerAndSplitsLikeComfy() throws IOException {
        Workflows.place(base, "checkpoints", SD1);
        try (WorkflowEngine engine = new WorkflowEngine(ModelPaths.of(base), 1L << 30)) {
            ExecutionResult plain = run(engine, start()
                    .node("3", "KSampler", "model", link("4", 0), "seed", 77L, "steps", 4, "cfg", 4.0,
                            "sampler_name", "euler", "scheduler", "normal", "positive", link("6", 0), "negative",
                            link("7", 0), "latent_image", link("5", 0), "denoise", 1.0)
                    .node("9", "PreviewImage", "images", link("8", 0))
                    .node("8", "VAEDecode", "samples", link("3", 0), "vae", link("4", 2)));
            ExecutionResult whole = run(engine, start()
                    .node("3", "KSamplerAdvanced", advanced("4", "5", "enable", 0, 10000, "disable"))
                    .node("8", "VAEDecode", "samples", link("3", 0), "vae", link("4", 2))
                    .node("9", "PreviewImage", "images", link("8", 0)));
            // the kernels' parallel sums may round differently run to run, hence a tolerance rather than bit equality
            Golden.assertClose("advanced over all steps = KSampler", latentOf(plain, "3"), latentOf(whole, "3"),
                    1e-4);

            // steps 0-2 with leftover noise, then 2-end without adding noise: euler is deterministic, so the same
            ExecutionResult split = run(engine, start()
                    .node("3", "KSamplerAdvanced", advanced("4", "5", "enable", 0, 2, "enable"))
                    .node("13", "KSamplerAdvanced", advanced("4", "3", "disable", 2, 10000, "disable"))
                    .node("8", "VAEDecode", "samples", link("13", 0), "vae", link("4", 2))
                    .node("9", "PreviewImage", "images", link("8", 0)));
            Golden.assertClose("two-stage KSamplerAdvanced", latentOf(plain, "3"), latentOf(split, "13"), 1e-4);
            // stopping early without leftover noise denoises fully at step 2: a different latent
            ExecutionResult early = run(engine, start()
                    .node("3", "KSamplerAdvanced", advanced("4", "5", "enable", 0, 2, "disable"))
                    .node("8", "VAEDecode", "samples", link("3", 0), "vae", link("4", 2))
                    .node("9", "PreviewImage", "images", link("8", 0)));
            assertTrue(Golden.maxAbsDiff(latentOf(plain, "3"), latentOf(early, "3")) > 1e-3);
            // start past the end: the input latent comes back unchanged
            ExecutionResult none = run(engine, start()
                    .node("3", "KSamplerAdvanced", advanced("4", "5", "enable", 4, 10000, "disable"))
                    .node("8", "VAEDecode", "samples", link("3", 0), "vae", link("4", 2))
                    .node("9", "PreviewImage", "images", link("8", 0)));
            assertArrayEquals(new float[4 * 8 * 8], latentOf(none, "3"));
        }
    }

    @Test
    void hiresGraphWithModelOnlyLoraClipSkipAndTiledDecode() throws IOException {
        Path ckpt = Workflows.place(base, "checkpoints", SD1);
        Workflows.place(base, "loras", "tiny-sd1-lora-kohya.safetensors");
        ModelPaths paths = ModelPaths.of(base);
        try (WorkflowEngine engine = new WorkflowEngine(paths, 1L << 30)) {
            ExecutionResult r = run(engine, new Workflows.Builder()
                    .node("4", "CheckpointLoaderSimple", "ckpt_name", SD1)
                    .node("10", "LoraLoaderModelOnly", "model", link("4", 0), "lora_name",
                            "tiny-sd1-lora-kohya.safetensors", "strength_model", 0.5)
                    .node("11", "ModelSamplingDiscrete", "model", link("10", 0), "sampling", "eps", "zsnr", false)
                    .node("12", "CLIPSetLastLayer", "clip", link("4", 1), "stop_at_clip_layer", -2)
                    .node("6", "CLIPTextEncode", "text", "a lighthouse", "clip", link("12", 0))
                    .node("7", "CLIPTextEncode", "text", "fog", "clip", link("12", 0))
                    .node("5", "EmptyLatentImage", "width", 64, "height", 64, "batch_size", 1)
                    .node("3", "KSampler", "model", link("11", 0), "seed", 3L, "steps", 2, "cfg", 5.0,
                            "sampler_name", "euler_ancestral", "scheduler", "karras", "positive", link("6", 0),
                            "negative", link("7", 0), "latent_image", link("5", 0), "denoise", 1.0)
                    .node("13", "LatentUpscale", "samples", link("3", 0), "upscale_method", "bilinear", "width", 96,
                            "height", 0, "crop", "disabled")
                    .node("14", "KSampler", "model", link("11", 0), "seed", 3L, "steps", 2, "cfg", 5.0,
                            "sampler_name", "euler", "scheduler", "normal", "positive", link("6", 0), "negative",
                            link("7", 0), "latent_image", link("13", 0), "denoise", 0.5)
                    .node("8", "VAEDecode", "samples", link("14", 0), "vae", link("4", 2))
                    .node("15", "VAEDecodeTiled", "samples", link("14", 0), "vae", link("4", 2), "tile_size", 512,
                            "overlap", 64, "temporal_size", 64, "temporal_overlap", 8)
                    .node("16", "VAEDecodeTiled", "samples", link("14", 0), "vae", link("4", 2), "tile_size", 64,
                            "overlap", 32, "temporal_size", 64, "temporal_overlap", 8)
                    .node("9", "SaveImage", "images", link("8", 0), "filename_prefix", "hires/%batch_num%")
                    .node("17", "PreviewImage", "images", link("15", 0))
                    .node("18", "PreviewImage", "images", link("16", 0)));
            Latent up = (Latent) r.values().get("13").getFirst();
            assertEquals(List.of(12, 12), List.of(up.width(), up.height()), "96 wide, height kept square");
            Image decoded = (Image) r.values().get("8").getFirst();
            assertEquals(96, decoded.width());
            // a latent that fits one tile decodes exactly as VAEDecode; smaller tiles still give the whole image
            Golden.assertClose("one-tile VAEDecodeTiled", decoded.pixels(),
                    ((Image) r.values().get("15").getFirst()).pixels(), 1e-6);
            Image tiled = (Image) r.values().get("16").getFirst();
            assertEquals(decoded.pixels().length, tiled.pixels().length);
            assertEquals("0_00001_.png",
                    Workflows.savedFiles(paths, r.outputs().get("9")).getFirst().getFileName().toString());
            assertTrue(Workflows.savedFiles(paths, r.outputs().get("9")).getFirst()
                    .startsWith(paths.outputDir().resolve("hires")));
        }
        // clip skip 2 through CLIPSetLastLayer equals the pipeline's --clip-skip 2
        try (WorkflowEngine engine = new WorkflowEngine(paths, 1L << 30)) {
            ExecutionResult r = run(engine, new Workflows.Builder()
                    .node("4", "CheckpointLoaderSimple", "ckpt_name", SD1)
                    .node("12", "CLIPSetLastLayer", "clip", link("4", 1), "stop_at_clip_layer", -2)
                    .node("6", "CLIPTextEncode", "text", "a lighthouse", "clip", link("12", 0))
                    .node("7", "CLIPTextEncode", "text", "fog", "clip", link("12", 0))
                    .node("5", "EmptyLatentImage", "width", 64, "height", 64, "batch_size", 1)
                    .node("3", "KSampler", "model", link("4", 0), "seed", 3L, "steps", 2, "cfg", 5.0,
                            "sampler_name", "euler", "scheduler", "normal", "positive", link("6", 0), "negative",
                            link("7", 0), "latent_image", link("5", 0), "denoise", 1.0)
                    .node("8", "VAEDecode", "samples", link("3", 0), "vae", link("4", 2))
                    .node("9", "PreviewImage", "images", link("8", 0)));
            GenerateResult expected = Pipeline.generate(GenerateRequest.builder(ckpt).prompt("a lighthouse")
                    .negativePrompt("fog").size(64, 64).seed(3L).steps(2).cfg(5.0).sampler("euler")
                    .scheduler("normal").clipSkip(2).build(), ProgressListener.NONE, CancellationToken.none());
            Golden.assertClose("clip skip 2 image", expected.image01(),
                    ((Image) r.values().get("8").getFirst()).pixels(), 1e-5);
        }
    }

    @Test
    void sdxlDiffusersUnetAndSdxlLoraEqualThePipeline() throws IOException {
        String sdxl = "tiny-sdxl-fp16.safetensors";
        String unetName = "tiny-sdxl-unet-diffusers-fp16.safetensors";
        String loraName = "tiny-sdxl-lora-kohya.safetensors";
        Path unet = Workflows.place(base, "diffusion_models", unetName);
        Path ckpt = Workflows.place(base, "checkpoints", sdxl);
        Path lora = Workflows.place(base, "loras", loraName);
        try (WorkflowEngine engine = new WorkflowEngine(ModelPaths.of(base), 1L << 30)) {
            // UNETLoader on a diffusers-layout UNet (the Lightning way) with the checkpoint's CLIP and VAE
            ExecutionResult r = run(engine, new Workflows.Builder()
                    .node("1", "UNETLoader", "unet_name", unetName, "weight_dtype", "default")
                    .node("4", "CheckpointLoaderSimple", "ckpt_name", sdxl)
                    .node("6", "CLIPTextEncode", "text", "a fox", "clip", link("4", 1))
                    .node("5", "EmptyLatentImage", "width", 64, "height", 64, "batch_size", 1)
                    .node("3", "KSampler", "model", link("1", 0), "seed", 1L, "steps", 2, "cfg", 1.0,
                            "sampler_name", "euler", "scheduler", "sgm_uniform", "positive", link("6", 0),
                            "negative", link("6", 0), "latent_image", link("5", 0), "denoise", 1.0)
                    .node("8", "VAEDecode", "samples", link("3", 0), "vae", link("4", 2))
                    .node("9", "PreviewImage", "images", link("8", 0)));
            GenerateResult expected = Pipeline.generate(GenerateRequest.builder(ckpt).unet(unet).prompt("a fox")
                    .size(64, 64).seed(1L).steps(2).cfg(1.0).sampler("euler").scheduler("sgm_uniform").build(),
                    ProgressListener.NONE, CancellationToken.none());
            Golden.assertClose("UNETLoader (diffusers layout) vs generate --unet", expected.image01(),
                    ((Image) r.values().get("8").getFirst()).pixels(), 1e-5);

            // LoraLoader on SDXL: UNet and both text encoders (bigG's fused in_proj) as the pipeline's --lora
            Workflows.Settings s = new Workflows.Settings(sdxl, "a fox in snow", "", 64, 64, 1, 4, 2, 5.0, "euler",
                    "normal", 1.0, null, List.<String[]>of(new String[] {loraName, "0.8", "0.8"}), null);
            ExecutionResult withLora = engine.execute(Workflows.txt2img(s), null, null, ExecutionListener.NONE);
            assertEquals(Status.SUCCESS, withLora.status(), withLora.message());
            GenerateResult lorad = Pipeline.generate(GenerateRequest.builder(ckpt).prompt(s.prompt())
                    .negativePrompt("").size(64, 64).seed(4L).steps(2).cfg(5.0).sampler("euler").scheduler("normal")
                    .loras(List.of(new GenerateRequest.LoraSpec(lora, 0.8))).build(), ProgressListener.NONE,
                    CancellationToken.none());
            Golden.assertClose("SDXL LoraLoader vs generate --lora", lorad.image01(),
                    ((Image) withLora.values().get("8").getFirst()).pixels(), 1e-5);
        }
    }

    @Test
    void unetOnlyFileInOriginalLayoutEqualsTheCheckpointsUnet() throws Exception {
        Path ckpt = Workflows.place(base, "checkpoints", SD1);
        Workflows.place(base, "loras", "tiny-sd1-lora-kohya.safetensors");
        ModelPaths paths = ModelPaths.of(base);
        Path unetFile = base.resolve("models/diffusion_models/tiny-unet.safetensors");
        try (jdiffusion.io.SafeTensors f = jdiffusion.io.SafeTensors.open(ckpt)) {
            jdiffusion.io.SafeTensorsWriter w = jdiffusion.io.SafeTensorsWriter.to(unetFile);
            for (String n : f.names()) {
                if (n.startsWith("model.diffusion_model.")) {
                    w.addFrom(f, n, n.substring("model.diffusion_model.".length()), jdiffusion.io.DType.F16);
                }
            }
            w.write();
        }
        try (WorkflowEngine engine = new WorkflowEngine(paths, 1L << 30)) {
            java.util.function.BiFunction<String, Boolean, Workflows.Builder> graph = (modelNode, lora) -> {
                Workflows.Builder b = start()
                        .node("1", "UNETLoader", "unet_name", "tiny-unet.safetensors", "weight_dtype", "default");
                String model = modelNode;
                if (lora) {
                    b.node("2", "LoraLoaderModelOnly", "model", link(modelNode, 0), "lora_name",
                            "tiny-sd1-lora-kohya.safetensors", "strength_model", 0.8);
                    model = "2";
                }
                return b.node("3", "KSampler", "model", link(model, 0), "seed", 11L, "steps", 2, "cfg", 3.0,
                                "sampler_name", "euler", "scheduler", "simple", "positive", link("6", 0),
                                "negative", link("7", 0), "latent_image", link("5", 0), "denoise", 1.0)
                        .node("8", "VAEDecode", "samples", link("3", 0), "vae", link("4", 2))
                        .node("9", "PreviewImage", "images", link("8", 0));
            };
            float[] fromCheckpoint = latentOf(run(engine, graph.apply("4", false)), "3");
            float[] fromUnetFile = latentOf(run(engine, graph.apply("1", false)), "3");
            // raw KSampler latents reach ~125 here; run-to-run rounding of the parallel kernels is ~1e-6 relative
            Golden.assertClose("UNETLoader vs checkpoint UNet", fromCheckpoint, fromUnetFile, 2e-3);
            float[] loraOnCheckpoint = latentOf(run(engine, graph.apply("4", true)), "3");
            float[] loraOnUnetFile = latentOf(run(engine, graph.apply("1", true)), "3");
            Golden.assertClose("model-only LoRA on UNETLoader vs checkpoint", loraOnCheckpoint, loraOnUnetFile, 2e-3);
            assertTrue(Golden.maxAbsDiff(fromCheckpoint, loraOnCheckpoint) > 1e-3, "the LoRA changes the latent");
        }
    }
}
