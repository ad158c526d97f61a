package jdiffusion.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import jdiffusion.text.ClipTokenizer;
import jdiffusion.text.Embeddings;
import jdiffusion.text.WeightedChunks;
import org.junit.jupiter.api.Test;

/** Embeddings through the conditioner: one tensor per SDXL encoder, and ComfyUI's handling of a width mismatch. */
class TextConditionerEmbeddingTest {
    private static Embeddings lib() {
        return Embeddings.folder(Golden.model("embeddings"));
    }

    @Test
    void sdxlEncodersEachSpliceTheirOwnVectors() throws Exception {
        try (SafeTensors file = SafeTensors.open(Golden.model("tiny-sdxl-fp16.safetensors"))) {
            TextConditioner tc = TextConditioner.load(file).withEmbeddings(lib());
            Map<String, WeightedChunks> t = tc.tokenizeWeighted("a photo of embedding:tinyembxl");
            assertEquals(64, t.get("clip_l").vectors().get(0).length);
            assertEquals(128, t.get("clip_g").vectors().get(0).length);
            // the conditioning equals the encoders run on the same slots by hand
            Conditioning c = tc.encode("a photo of embedding:tinyembxl");
            List<jdiffusion.io.Weights> te = TextConditioner.textEncoderWeights(file, Family.SDXL);
            ClipTextEncoder l = ClipTextEncoder.load(te.get(0));
            int[] ids = t.get("clip_l").ids()[0];
            float[] table = flat(t.get("clip_l").vectors());
            float[] expectL = l.forward(ids, 1, table).hidden(-2);
            float[] ours = new float[77 * 64];
            for (int r = 0; r < 77; r++) {
                System.arraycopy(c.context(), r * c.dim(), ours, r * 64, 64);
            }
            assertArrayEquals(expectL, ours);
            assertFalse(Arrays.equals(expectL, l.forward(ClipTokenizer.clipL().encodeWeighted("a photo of").ids()[0], 1).hidden(-2)));
        }
    }

    @Test
    void aVectorOfTheWrongWidthIsLeftOutAndTheRowPadded() throws Exception {
        // the SD1 embedding (width 64) on SDXL: clip_l (64) takes it, clip_g (128) drops it as ComfyUI does
        try (SafeTensors file = SafeTensors.open(Golden.model("tiny-sdxl-fp16.safetensors"))) {
            TextConditioner tc = TextConditioner.load(file).withEmbeddings(lib());
            Conditioning with = tc.encode("a embedding:tinyemb cat");
            Conditioning without = tc.withEmbeddings(Embeddings.none()).encode("a cat");
            // clip_g's part (channels 64..191) is the plain "a cat" row: the two slots left out, padding appended
            for (int r = 0; r < 77; r++) {
                float[] a = Arrays.copyOfRange(with.context(), r * with.dim() + 64, (r + 1) * with.dim());
                float[] b = Arrays.copyOfRange(without.context(), r * without.dim() + 64, (r + 1) * without.dim());
                assertArrayEquals(b, a, "clip_g row " + r);
            }
        }
    }

    private static float[] flat(List<float[]> v) {
        float[] out = new float[v.size() * v.get(0).length];
        for (int i = 0; i < v.size(); i++) {
            System.arraycopy(v.get(i), 0, out, i * v.get(0).length, v.get(0).length);
        }
        return out;
    }
}
