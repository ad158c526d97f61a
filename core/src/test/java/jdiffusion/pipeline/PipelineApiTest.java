package jdiffusion.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.PngReader;
import jdiffusion.io.SafeTensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The library API around a generation: progress, cancellation, batch files, metadata, the result's fields. */
class PipelineApiTest {
    @TempDir
    Path dir;

    private GenerateRequest.Builder tiny() {
        return GenerateRequest.builder(Golden.model("tiny-sd1-fp16.safetensors")).prompt("a red apple")
                .negativePrompt("blurry").size(64, 64).steps(3).cfg(4.0).seed(7L);
    }

    @Test
    void batchWritesCountedFilesWithMetadataAndReportsEveryStep() throws Exception {
        List<Integer> steps = new ArrayList<>();
        List<String> stages = new ArrayList<>();
        ProgressListener listener = new ProgressListener() {
            @Override
            public void onStep(int step, int total, float[] latent) {
                assertEquals(3, total);
                assertEquals(2 * 4 * 8 * 8, latent.length);
                steps.add(step);
            }

            @Override
            public void onStage(String stage) {
                stages.add(stage);
            }
        };
        Path out = dir.resolve("apple.png");
        GenerateResult r = Pipeline.generate(tiny().batch(2).output(out).saveLatent(dir.resolve("apple.safetensors"))
                .build(), listener, CancellationToken.none());
        assertEquals(List.of(1, 2, 3), steps);
        assertEquals(List.of("load", "text", "sampling", "decode", "save"), stages);
        assertEquals(List.of(out, dir.resolve("apple_1.png")), r.files());
        assertEquals(2, r.images().size());
        assertArrayEquals(new int[] {2, 4, 8, 8}, r.latentShape());
        assertEquals(7L, r.seed());
        assertEquals("SD1", r.settings().family());
        Map<String, String> text = PngReader.text(out);
        String params = text.get("parameters");
        assertTrue(params.startsWith("a red apple\nNegative prompt: blurry\nSteps: 3, Sampler: Euler, Schedule type:"
                + " Normal, CFG scale: 4, Seed: 7, Size: 64x64, Model hash: "), params);
        String hash = ModelHash.shortSha256(Golden.model("tiny-sd1-fp16.safetensors"));
        assertTrue(params.contains("Model hash: " + hash + ", Model: tiny-sd1-fp16"), params);
        assertTrue(text.get("prompt").contains("\"EmptyLatentImage\""));
        try (SafeTensors st = SafeTensors.open(r.latentFile())) {
            assertArrayEquals(r.latent(), st.floats("latent"));
        }
        // batch item 1 comes from the second half of the one noise draw: it differs from item 0
        assertTrue(!java.util.Arrays.equals(r.images().get(0).rgb(), r.images().get(1).rgb()));
        assertTrue(r.timings().seconds().keySet().containsAll(List.of("load", "text", "sampling", "decode", "save")));
    }

    @Test
    void cancellationStopsBetweenStepsAndWritesNothing() throws Exception {
        CancellationToken cancel = new CancellationToken();
        ProgressListener cancelAfterFirst = (step, total, latent) -> cancel.cancel();
        GenerationCancelledException e = assertThrows(GenerationCancelledException.class,
                () -> Pipeline.generate(tiny().output(dir.resolve("x.png")).build(), cancelAfterFirst, cancel));
        assertTrue(e.getMessage().contains("cancelled"), e.getMessage());
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(0, files.count());
        }
    }

    @Test
    void sameSeedSameImageAndDefaultsFilledIn() {
        GenerateResult a = Pipeline.generate(tiny().build(), ProgressListener.NONE, CancellationToken.none());
        GenerateResult b = Pipeline.generate(tiny().build(), ProgressListener.NONE, CancellationToken.none());
        // the fast kernels are not bit-identical between the interpreted and JIT-compiled runs (last-ulp sums),
        // so the same seed gives the same image and a latent equal to float rounding
        jdiffusion.Golden.assertClose("same seed latent", a.latent(), b.latent(), 1e-4);
        assertArrayEquals(a.images().get(0).rgb(), b.images().get(0).rgb());
        GenerateResult d = Pipeline.generate(GenerateRequest.builder(Golden.model("tiny-sd1-fp16.safetensors"))
                .size(64, 64).steps(1).build(), ProgressListener.NONE, CancellationToken.none());
        assertEquals(7.0, d.settings().cfg());
        assertEquals("euler", d.settings().sampler());
        assertEquals("normal", d.settings().scheduler());
        assertTrue(d.files().isEmpty());
    }

    @Test
    void vaeFromAnotherFileAndABadOne() {
        Path ckpt = Golden.model("tiny-sd1-fp16.safetensors");
        GenerateResult own = Pipeline.generate(tiny().steps(1).build(), ProgressListener.NONE, CancellationToken.none());
        GenerateResult other = Pipeline.generate(tiny().steps(1).vae(ckpt).build(), ProgressListener.NONE,
                CancellationToken.none());
        assertArrayEquals(own.images().get(0).rgb(), other.images().get(0).rgb());
        assertEquals("tiny-sd1-fp16.safetensors", other.settings().vaeName());
        GenerateException e = assertThrows(GenerateException.class, () -> Pipeline.generate(
                tiny().vae(Golden.model("tiny-sd1-lora-kohya.safetensors")).build(), ProgressListener.NONE,
                CancellationToken.none()));
        assertTrue(e.getMessage().contains("tiny-sd1-lora-kohya.safetensors") && e.getMessage().contains("VAE"),
                e.getMessage());
    }

    @Test
    void modelsLoadedOnceServeSeveralRequests() {
        GenerateRequest first = tiny().steps(1).build();
        try (PipelineModels models = Pipeline.load(first)) {
            GenerateResult a = Pipeline.generate(models, first, ProgressListener.NONE, CancellationToken.none());
            GenerateResult b = Pipeline.generate(models, tiny().steps(1).seed(8L).build(), ProgressListener.NONE,
                    CancellationToken.none());
            GenerateResult again = Pipeline.generate(GenerateRequest.builder(first.model()).prompt("a red apple")
                    .negativePrompt("blurry").size(64, 64).steps(1).cfg(4.0).seed(7L).build(), ProgressListener.NONE,
                    CancellationToken.none());
            assertEquals(8L, b.seed());
            assertTrue(!java.util.Arrays.equals(a.latent(), b.latent()), "another seed, another latent");
            Golden.assertClose("reused models", again.latent(), a.latent(), 1e-4);
        }
    }
}
