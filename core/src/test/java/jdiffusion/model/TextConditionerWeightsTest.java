package jdiffusion.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import jdiffusion.text.ClipTokenizer;
import jdiffusion.text.WeightedChunks;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * ComfyUI's token weighting, z = (z - z_empty) * w + z_empty per weighted token, checked against the formula
 * evaluated here on unweighted encodings of the same token rows and of the all-padding row.
 *
 * <p>Two forward passes over the same ids are not always bit-identical in this engine (the vectorised kernels round
 * differently before and after the JIT compiles them: up to ~1.5e-6 on the tiny encoders), so results of separate
 * passes are compared at {@link #RUN_TO_RUN}; every weighted token moves by far more than that.
 */
class TextConditionerWeightsTest {
    private static final double RUN_TO_RUN = 1e-5;

    private static TextConditioner sd1;
    private static TextConditioner sdxl;
    private static SafeTensors sd1File;

    @BeforeAll
    static void load() throws Exception {
        sd1File = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"));
        sd1 = TextConditioner.load(sd1File);
        try (SafeTensors f = SafeTensors.open(Golden.model("tiny-sdxl-fp16.safetensors"))) {
            sdxl = TextConditioner.load(f);
        }
    }

    @AfterAll
    static void close() {
        sd1File.close();
    }

    /** The plain encoding of the prompt's own token rows: what every weight-1 position must equal bit for bit. */
    private static Conditioning plain(TextConditioner tc, String prompt) {
        return tc.encodeTokens(tc.tokenize(prompt));
    }

    /** The conditioning of the all-padding row (start, end, pad) of every encoder, [77][dim]. */
    private static Conditioning empty(TextConditioner tc) {
        Map<String, int[][]> rows = new LinkedHashMap<>();
        tc.tokenize("").forEach((name, r) -> rows.put(name, r));
        return tc.encodeTokens(rows);
    }

    /** The formula on a whole context: both SDXL towers get the same weights, so channel-wise it is the same. */
    private static float[] expected(TextConditioner tc, String prompt) {
        Conditioning plain = plain(tc, prompt);
        float[] e = empty(tc).context();
        double[][] weights = tc.tokenizeWeighted(prompt).values().iterator().next().weights();
        float[] z = plain.context().clone();
        int dim = plain.dim();
        for (int r = 0; r < weights.length; r++) {
            for (int t = 0; t < 77; t++) {
                float w = (float) weights[r][t];
                if (weights[r][t] == 1.0) {
                    continue;
                }
                for (int c = 0; c < dim; c++) {
                    int i = (r * 77 + t) * dim + c;
                    float ze = e[t * dim + c];
                    z[i] = (z[i] - ze) * w + ze;
                }
            }
        }
        return z;
    }

    @Test
    void sd1WeightedPromptFollowsTheFormula() {
        String prompt = "a (cat:1.3) on ((a mat)), (blurry:0.5)";
        Conditioning c = sd1.encode(prompt);
        Golden.assertClose("weighted SD1 context", expected(sd1, prompt), c.context(), RUN_TO_RUN);
        assertNull(c.pooled());
        // the formula moved the weighted tokens and nothing else
        float[] plain = plain(sd1, prompt).context();
        double[] w = sd1.tokenizeWeighted(prompt).get("clip_l").weights()[0];
        int changed = 0;
        for (int t = 0; t < 77; t++) {
            float[] a = Arrays.copyOfRange(plain, t * 64, (t + 1) * 64);
            float[] b = Arrays.copyOfRange(c.context(), t * 64, (t + 1) * 64);
            if (w[t] == 1.0) {
                Golden.assertClose("position " + t, a, b, RUN_TO_RUN);
            } else {
                assertTrue(Golden.maxAbsDiff(a, b) > 1e-3, "position " + t + " weight " + w[t]);
                changed++;
            }
        }
        assertTrue(changed >= 4, "weighted positions: " + changed); // cat, a, mat, blurry (one or more tokens)
    }

    @Test
    void sd1AgainstTheEncoderDirectly() {
        // the same formula on ClipTextEncoder's final-normed last layer, one row per forward
        String prompt = "a photo of a (cat:1.6) wearing (a (red) hat:0.4)";
        WeightedChunks chunks = sd1.tokenizeWeighted(prompt).get("clip_l");
        ClipTextEncoder enc = ClipTextEncoder.load(Weights.prefixed(sd1File, "cond_stage_model.transformer."));
        float[] z = enc.forward(chunks.ids()[0]).lastHiddenState();
        float[] e = enc.forward(ClipTokenizer.clipL().encodeChunks("")[0]).lastHiddenState();
        double[] w = chunks.weights()[0];
        float[] expected = z.clone();
        for (int t = 0; t < 77; t++) {
            for (int c = 0; c < 64; c++) {
                int i = t * 64 + c;
                expected[i] = (float) ((z[i] - e[i]) * w[t] + e[i]);
            }
        }
        // the test computes in double, the conditioner in float32 steps: a few ulps apart
        Golden.assertClose("weighted SD1 context", expected, sd1.encode(prompt).context(), RUN_TO_RUN);
    }

    @Test
    void weightZeroGivesTheEmptyPromptsStates() {
        String prompt = "a photo of a (cat:0)";
        double[] w = sd1.tokenizeWeighted(prompt).get("clip_l").weights()[0];
        int cat = 5;
        assertEquals(0.0, w[cat]);
        float[] c = sd1.encode(prompt).context();
        float[] e = empty(sd1).context();
        Golden.assertClose("weight 0", Arrays.copyOfRange(e, cat * 64, (cat + 1) * 64), Arrays.copyOfRange(c, cat * 64, (cat + 1) * 64), RUN_TO_RUN);
    }

    @Test
    void allWeightsOneIsThePlainPath() {
        // explicit weight 1 and escaped parentheses: the same ids as plain text and no empty row
        assertArrayEquals(sd1.tokenize("a photo of a cat").get("clip_l"), sd1.tokenize("a photo of a (cat:1)").get("clip_l"));
        assertTrue(!sd1.tokenizeWeighted("a photo of a (cat:1)").get("clip_l").weighted());
        Golden.assertClose("(cat:1)", sd1.encode("a photo of a cat").context(), sd1.encode("a photo of a (cat:1)").context(), RUN_TO_RUN);
        Golden.assertClose("escapes", plain(sd1, "a \\(cat\\)").context(), sd1.encode("a \\(cat\\)").context(), RUN_TO_RUN);
        Conditioning x = sdxl.encode("a majestic (lion:1.0) in the savanna");
        Conditioning y = sdxl.encodeTokens(ids(ClipTokenizer.clipL().encodeChunks("a majestic lion in the savanna"),
                ClipTokenizer.openClip().encodeChunks("a majestic lion in the savanna")));
        Golden.assertClose("sdxl (lion:1.0)", y.context(), x.context(), RUN_TO_RUN);
        Golden.assertClose("sdxl pooled", y.pooled(), x.pooled(), RUN_TO_RUN);
    }

    @Test
    void sdxlBothTowersWeightedPooledFromFirstChunkUnweighted() {
        String prompt = "a majestic (lion:1.4) in the ((savanna)) at sunset, (cinematic:0.6)";
        Map<String, WeightedChunks> t = sdxl.tokenizeWeighted(prompt);
        assertArrayEquals(t.get("clip_l").weights(), t.get("clip_g").weights());
        Conditioning c = sdxl.encode(prompt);
        Golden.assertClose("weighted SDXL context", expected(sdxl, prompt), c.context(), RUN_TO_RUN);
        Golden.assertClose("SDXL pooled", plain(sdxl, prompt).pooled(), c.pooled(), RUN_TO_RUN);
        assertEquals(192, c.dim());
    }

    @Test
    void sdxlLongWeightedPromptAcrossChunks() {
        // a weighted 9-token group straddles token 75 and is split; a short group after it stays whole
        String prompt = "cat ".repeat(70) + "(a b c d e f g h i:1.25) (dog:0.8)";
        Map<String, WeightedChunks> t = sdxl.tokenizeWeighted(prompt);
        assertEquals(2, t.get("clip_l").rows());
        Conditioning c = sdxl.encode(prompt);
        assertEquals(154, c.tokens());
        Golden.assertClose("two-chunk SDXL context", expected(sdxl, prompt), c.context(), RUN_TO_RUN);
        // pooled: the first chunk's, as if unweighted
        Conditioning first = sdxl.encodeTokens(ids(new int[][] {t.get("clip_l").ids()[0]}, new int[][] {t.get("clip_g").ids()[0]}));
        Golden.assertClose("two-chunk SDXL pooled", first.pooled(), c.pooled(), RUN_TO_RUN);
    }

    /** SD2 (OpenCLIP tower, penultimate + final LayerNorm, pad 0): the weights act on the normed states. */
    @Test
    void sd2WeightsTheFinalNormedPenultimateStates(@TempDir Path tmp) throws Exception {
        Path sd2File = tmp.resolve("fake-sd2-te.safetensors");
        try (SafeTensors f = SafeTensors.open(Golden.model("tiny-sdxl-fp16.safetensors"))) {
            F32Copy.write(f, "conditioner.embedders.1.model.", "cond_stage_model.model.", sd2File);
        }
        try (SafeTensors f = SafeTensors.open(sd2File)) {
            TextConditioner sd2 = TextConditioner.load(f);
            assertEquals(Family.SD2, sd2.family());
            String prompt = "a (cozy:1.5) cabin in ((snowy)) mountains";
            // the empty row pads with 0, as the OpenCLIP tokenizer does
            assertEquals(0, sd2.tokenize("").get("clip_h")[0][2]);
            Conditioning c = sd2.encode(prompt);
            Golden.assertClose("weighted SD2 context", expected(sd2, prompt), c.context(), RUN_TO_RUN);
            assertNull(c.pooled());
        }
    }

    private static Map<String, int[][]> ids(int[][] l, int[][] g) {
        Map<String, int[][]> m = new LinkedHashMap<>();
        m.put("clip_l", l);
        m.put("clip_g", g);
        return m;
    }

    @Test
    void missingEncoderRowsAreNamed() {
        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> sdxl.encodeWeighted(Map.of("clip_l", WeightedChunks.unweighted(ClipTokenizer.clipL().encodeChunks("x")))));
        assertTrue(e.getMessage().contains("clip_g"), e.getMessage());
        assertEquals(List.of("clip_l"), List.copyOf(sd1.tokenizeWeighted("x").keySet()));
    }
}
