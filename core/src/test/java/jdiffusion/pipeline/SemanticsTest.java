package jdiffusion.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import jdiffusion.sampling.PredictionType;
import org.junit.jupiter.api.Test;

/**
 * The conditioning rules of the two references, checked on a stand-in model that records what the UNet is given:
 * batch order [uncond, cond], cfg 1 / cfg <= 1 skipping the uncond pass, SDXL's zero uncond (diffusers) versus the
 * encoded empty prompt (ComfyUI), long prompts (ComfyUI's chunks repeated to a common length, diffusers' 77 tokens).
 */
class SemanticsTest {
    /** Text: every character of the prompt becomes the value of one channel; long prompts take two 77-token chunks. */
    static final class FakeModels implements PipelineModels {
        final String family;
        final List<Integer> batches = new ArrayList<>();
        final List<Integer> tokens = new ArrayList<>();
        final List<float[]> contexts = new ArrayList<>();
        final List<float[]> adms = new ArrayList<>();

        FakeModels(String family) {
            this.family = family;
        }

        @Override
        public String family() {
            return family;
        }

        @Override
        public PredictionType detectedPrediction() {
            return PredictionType.EPS;
        }

        @Override
        public double latentScale() {
            return 0.5;
        }

        @Override
        public TextCond encodeText(String prompt, int clipSkip) {
            int t = prompt.length() > 20 ? 154 : 77;
            float[] ctx = new float[t * 2];
            java.util.Arrays.fill(ctx, 1 + prompt.length());
            return new TextCond(ctx, t, 2, isSdxl() ? new float[] {1 + prompt.length()} : null);
        }

        @Override
        public float[] unet(float[] x, int batch, int h, int w, float[] timesteps, float[] context, int tokens,
                float[] y) {
            batches.add(batch);
            this.tokens.add(tokens);
            contexts.add(context.clone());
            adms.add(y == null ? null : y.clone());
            return new float[x.length];
        }

        @Override
        public float[] sdxlAdm(float[] pooled, int batch, int height, int width) {
            return pooled.clone();
        }

        @Override
        public float[] decode(float[] latent, int batch, int h, int w) {
            return new float[batch * 3 * h * 8 * w * 8];
        }

        @Override
        public Moments encode(float[] image, int batch, int height, int width) {
            throw new UnsupportedOperationException();
        }
    }

    private static FakeModels run(String family, String scheduler, double cfg, String prompt, String negative) {
        FakeModels m = new FakeModels(family);
        GenerateRequest r = GenerateRequest.builder(java.nio.file.Path.of("fake.safetensors")).prompt(prompt)
                .negativePrompt(negative).size(64, 64).steps(2).cfg(cfg).seed(1L).scheduler(scheduler).build();
        Pipeline.generate(m, r, null, null, ProgressListener.NONE, CancellationToken.none(), new Timings());
        return m;
    }

    @Test
    void cfgBatchesUncondFirstAndSkipsItAtOne() {
        FakeModels guided = run("SD1", "normal", 7, "cat", "dog!");
        assertEquals(List.of(2, 2), guided.batches);
        float[] ctx = guided.contexts.get(0);
        assertEquals(5f, ctx[0], "row 0 is the negative prompt");
        assertEquals(4f, ctx[77 * 2], "row 1 the prompt");
        assertEquals(List.of(1, 1), run("SD1", "normal", 1, "cat", "dog").batches, "ComfyUI skips uncond at cfg 1");
        assertEquals(List.of(1, 1), run("SD1", "leading", 0, "cat", "dog").batches, "diffusers: no CFG at cfg <= 1");
        assertEquals(List.of(2, 2), run("SD1", "leading", 1.5, "cat", "dog").batches);
    }

    @Test
    void sdxlWithoutNegativeZerosForDiffusersEmptyPromptForComfy() {
        FakeModels diffusers = run("SDXL", "trailing", 5, "cat", null);
        assertEquals(0f, diffusers.contexts.get(0)[0], "diffusers SDXL: zero uncond context");
        assertEquals(0f, diffusers.adms.get(0)[0], "and zero pooled");
        assertEquals(4f, diffusers.adms.get(0)[1]);
        FakeModels comfy = run("SDXL", "normal", 5, "cat", null);
        assertEquals(1f, comfy.contexts.get(0)[0], "ComfyUI encodes the empty prompt");
        assertEquals(1f, comfy.adms.get(0)[0]);
        FakeModels sd1 = run("SD1", "leading", 5, "cat", null);
        assertEquals(1f, sd1.contexts.get(0)[0], "diffusers SD1 encodes the empty prompt");
    }

    @Test
    void longPromptsChunkedForComfyTruncatedForDiffusers() {
        String longPrompt = "a very long prompt with many many words";
        FakeModels comfy = run("SD1", "karras", 5, longPrompt, "");
        assertEquals(154, comfy.tokens.get(0));
        float[] ctx = comfy.contexts.get(0);
        assertTrue(ctx[0] == 1f && ctx[77 * 2] == 1f, "the short uncond is repeated to 154 tokens");
        assertEquals(List.of(77, 77), run("SD1", "linspace", 5, longPrompt, "").tokens);
    }
}
