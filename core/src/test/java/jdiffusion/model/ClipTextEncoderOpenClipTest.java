package jdiffusion.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Set;
import jdiffusion.Golden;
import jdiffusion.io.OpenClipWeights;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import jdiffusion.text.ClipTokenizer;
import org.junit.jupiter.api.Test;

/** {@link OpenClipWeights}: the name mapping, the q/k/v split, the projection transpose, and a round trip. */
class ClipTextEncoderOpenClipTest {
    private static float[] iota(int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = i;
        }
        return a;
    }

    /** A 1-layer OpenCLIP tower of width c with recognisable values. */
    private static MapWeights tinyOpenClip(int c, int proj) {
        String l = "transformer.resblocks.0.";
        return new MapWeights()
                .put("token_embedding.weight", iota(10 * c), 10, c)
                .put("positional_embedding", iota(4 * c), 4, c)
                .put("logit_scale", new float[] {4.6f})
                .put(l + "ln_1.weight", iota(c), c).put(l + "ln_1.bias", iota(c), c)
                .put(l + "attn.in_proj_weight", iota(3 * c * c), 3 * c, c)
                .put(l + "attn.in_proj_bias", iota(3 * c), 3 * c)
                .put(l + "attn.out_proj.weight", iota(c * c), c, c).put(l + "attn.out_proj.bias", iota(c), c)
                .put(l + "ln_2.weight", iota(c), c).put(l + "ln_2.bias", iota(c), c)
                .put(l + "mlp.c_fc.weight", iota(4 * c * c), 4 * c, c).put(l + "mlp.c_fc.bias", iota(4 * c), 4 * c)
                .put(l + "mlp.c_proj.weight", iota(4 * c * c), c, 4 * c).put(l + "mlp.c_proj.bias", iota(c), c)
                .put("ln_final.weight", iota(c), c).put("ln_final.bias", iota(c), c)
                .put("text_projection", iota(c * proj), c, proj);
    }

    @Test
    void namesShapesAndSlices() {
        int c = 3;
        OpenClipWeights w = OpenClipWeights.of(tinyOpenClip(c, 2));
        String l = "text_model.encoder.layers.0.";
        assertEquals(Set.of("text_model.embeddings.token_embedding.weight", "text_model.embeddings.position_embedding.weight",
                l + "layer_norm1.weight", l + "layer_norm1.bias", l + "layer_norm2.weight", l + "layer_norm2.bias",
                l + "self_attn.q_proj.weight", l + "self_attn.q_proj.bias", l + "self_attn.k_proj.weight",
                l + "self_attn.k_proj.bias", l + "self_attn.v_proj.weight", l + "self_attn.v_proj.bias",
                l + "self_attn.out_proj.weight", l + "self_attn.out_proj.bias", l + "mlp.fc1.weight", l + "mlp.fc1.bias",
                l + "mlp.fc2.weight", l + "mlp.fc2.bias", "text_model.final_layer_norm.weight",
                "text_model.final_layer_norm.bias", "text_projection.weight"), w.names());
        assertArrayEquals(new int[] {c, c}, w.shape(l + "self_attn.k_proj.weight"));
        assertArrayEquals(new float[] {9, 10, 11, 12, 13, 14, 15, 16, 17}, w.get(l + "self_attn.k_proj.weight"));
        assertArrayEquals(new float[] {18, 19, 20, 21, 22, 23, 24, 25, 26}, w.get(l + "self_attn.v_proj.weight"));
        assertArrayEquals(new float[] {0, 1, 2}, w.get(l + "self_attn.q_proj.bias"));
        assertArrayEquals(new float[] {6, 7, 8}, w.get(l + "self_attn.v_proj.bias"));
        // text_projection [c=3, proj=2] = [[0,1],[2,3],[4,5]] becomes the Linear weight [2, 3]
        assertArrayEquals(new int[] {2, 3}, w.shape("text_projection.weight"));
        assertArrayEquals(new float[] {0, 2, 4, 1, 3, 5}, w.get("text_projection.weight"));
        assertArrayEquals(new int[] {4, c}, w.shape("text_model.embeddings.position_embedding.weight"));
        assertTrue(OpenClipWeights.isOpenClip(w));
        assertFalse(OpenClipWeights.isOpenClip(w.raw()));
        assertEquals(ClipTextEncoder.Activation.GELU, ClipTextEncoder.Activation.of(w));
    }

    @Test
    void notAnOpenClipTower() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> OpenClipWeights.of(new MapWeights().put("text_model.embeddings.token_embedding.weight", iota(4), 2, 2)));
        assertTrue(e.getMessage().contains("not an OpenCLIP text encoder"), e.getMessage());
        MapWeights bad = tinyOpenClip(3, 2).put("transformer.resblocks.0.attn.in_proj_weight", iota(8 * 3), 8, 3);
        e = assertThrows(IllegalArgumentException.class, () -> OpenClipWeights.of(bad));
        assertTrue(e.getMessage().contains("in_proj_weight"), e.getMessage());
    }

    /**
     * The SD1 CLIP-L (HF layout) rewritten into the OpenCLIP layout (fused q/k/v, transposed projection) and read
     * back through OpenClipWeights gives the same encoder outputs, activation passed explicitly.
     */
    @Test
    void roundTripThroughOpenClipLayout() throws Exception {
        try (SafeTensors file = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            Weights hf = Weights.prefixed(file, "cond_stage_model.transformer.");
            MapWeights raw = toOpenClip(hf);
            float[] proj = iota(64 * 32);
            for (int i = 0; i < proj.length; i++) {
                proj[i] = (float) Math.sin(i) * 0.1f;
            }
            raw.put("text_projection", proj, 64, 32);
            ClipTextEncoder a = ClipTextEncoder.load(hf);
            ClipTextEncoder b = ClipTextEncoder.load(OpenClipWeights.of(raw), ClipTextEncoder.Activation.QUICK_GELU);
            assertEquals(a.config().layers(), b.config().layers());
            assertEquals(32, b.config().projectionDim());
            int[] ids = ClipTokenizer.clipL().encodePadded("a photo of a cat");
            ClipTextEncoder.Output oa = a.forward(ids);
            ClipTextEncoder.Output ob = b.forward(ids);
            assertArrayEquals(oa.lastHiddenState(), ob.lastHiddenState());
            assertArrayEquals(oa.hidden(-2), ob.hidden(-2));
            // text_embeds = pooled @ text_projection (OpenCLIP's convention), computed here directly
            float[] expected = new float[32];
            for (int j = 0; j < 32; j++) {
                double s = 0;
                for (int i = 0; i < 64; i++) {
                    s += (double) oa.pooled()[i] * proj[i * 32 + j];
                }
                expected[j] = (float) s;
            }
            Golden.assertClose("text_embeds", expected, ob.textEmbeds(), 1e-5);
        }
    }

    private static MapWeights toOpenClip(Weights hf) {
        MapWeights raw = new MapWeights();
        String e = "text_model.embeddings.";
        raw.put("token_embedding.weight", hf.get(e + "token_embedding.weight"), hf.shape(e + "token_embedding.weight"));
        raw.put("positional_embedding", hf.get(e + "position_embedding.weight"), hf.shape(e + "position_embedding.weight"));
        raw.put("ln_final.weight", hf.get("text_model.final_layer_norm.weight"), 64);
        raw.put("ln_final.bias", hf.get("text_model.final_layer_norm.bias"), 64);
        for (int i = 0; i < 3; i++) {
            String h = "text_model.encoder.layers." + i + ".";
            String o = "transformer.resblocks." + i + ".";
            for (String[] pair : new String[][] {{"layer_norm1", "ln_1"}, {"layer_norm2", "ln_2"},
                    {"self_attn.out_proj", "attn.out_proj"}, {"mlp.fc1", "mlp.c_fc"}, {"mlp.fc2", "mlp.c_proj"}}) {
                for (String kind : new String[] {".weight", ".bias"}) {
                    raw.put(o + pair[1] + kind, hf.get(h + pair[0] + kind), hf.shape(h + pair[0] + kind));
                }
            }
            float[] w = new float[3 * 64 * 64];
            float[] bias = new float[3 * 64];
            String[] qkv = {"q_proj", "k_proj", "v_proj"};
            for (int p = 0; p < 3; p++) {
                System.arraycopy(hf.get(h + "self_attn." + qkv[p] + ".weight"), 0, w, p * 64 * 64, 64 * 64);
                System.arraycopy(hf.get(h + "self_attn." + qkv[p] + ".bias"), 0, bias, p * 64, 64);
            }
            raw.put(o + "attn.in_proj_weight", w, 192, 64);
            raw.put(o + "attn.in_proj_bias", bias, 192);
        }
        return raw;
    }
}
