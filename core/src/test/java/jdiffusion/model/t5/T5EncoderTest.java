package jdiffusion.model.t5;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import jdiffusion.Golden;
import jdiffusion.io.BasicView;
import jdiffusion.io.DType;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.SafeTensorsWriter;
import jdiffusion.io.Weights;
import jdiffusion.tensor.Fp8;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Position buckets against HF's table, fp8 T5 files (t5xxl_fp8_e4m3fn layout, scaled fp8), bad input. */
class T5EncoderTest {
    @TempDir
    Path tmp;

    private static Path tinyCheckpoint() {
        return Golden.model("tiny-sd35-fp16.safetensors");
    }

    @Test
    void bucketsMatchHuggingFace() {
        // values of transformers' T5Attention._relative_position_bucket(bidirectional=True, 32 buckets, 128)
        int[][] table = {{0, 0}, {1, 17}, {-1, 1}, {7, 23}, {-7, 7}, {8, 24}, {-8, 8}, {11, 24}, {12, 25}, {-12, 9},
                {15, 25}, {16, 26}, {-16, 10}, {31, 27}, {32, 28}, {63, 29}, {64, 30}, {-64, 14}, {127, 31}, {128, 31},
                {-128, 15}, {1000, 31}, {-1000, 15}};
        for (int[] t : table) {
            assertEquals(t[1], T5Encoder.bucket(t[0], 32, 128), "bucket of " + t[0]);
        }
    }

    @Test
    void fp8FileKeepsOneBytePerWeightAndComputesWithTheWidenedValues() throws Exception {
        Path f8 = T5EncoderGoldenTest.separateFile(tinyCheckpoint(), DType.F8_E4M3, tmp);
        // an F32 file of the same (fp8-rounded) values is the reference
        Path f32 = tmp.resolve("t5-f8-as-f32.safetensors");
        try (SafeTensors src = SafeTensors.open(f8)) {
            SafeTensorsWriter w = SafeTensorsWriter.to(f32);
            for (String n : src.names()) {
                w.addFrom(src, n, n, DType.F32);
            }
            w.write();
        }
        int[] ids = {3, 9, 1202, 13, 3, 9, 1712, 1, 0, 0, 0, 5, 17, 1, 0, 0, 0, 0, 0, 0};
        try (SafeTensors a = SafeTensors.open(f8); SafeTensors b = SafeTensors.open(f32)) {
            T5Encoder e8 = T5Encoder.load(T5Encoder.weights(a));
            T5Encoder e32 = T5Encoder.load(T5Encoder.weights(b));
            assertEquals(DType.F8_E4M3, T5Encoder.weights(a).dtype("shared.weight"));
            assertEquals(e32.weightBytes(), 4 * e8.weightBytes(), "fp8 weights stay 8-bit");
            float[] y8 = e8.forward(ids, 2);
            assertArrayEquals(e32.forward(ids, 2), y8, 0f);
            // the embedding row comes straight from the fp8 bytes
            float[] row = T5Encoder.weights(a).row("shared.weight", 1202);
            float[] full = b.floats("shared.weight");
            int d = e8.config().dModel();
            for (int j = 0; j < d; j++) {
                assertEquals(full[1202 * d + j], row[j]);
                assertEquals(Fp8.e4m3(Fp8.toE4m3(row[j])), row[j]);
            }
        }
    }

    @Test
    void scaledFp8LayersScaleTheirOutput() throws Exception {
        // ComfyUI's scaled fp8 files: weight = stored fp8 * scale_weight; here every stored weight is the F32
        // file's weight / 2 exactly (a power of two), with scale_weight 2
        Path f32 = T5EncoderGoldenTest.separateFile(tinyCheckpoint(), DType.F32, tmp);
        Path scaled = tmp.resolve("t5-scaled.safetensors");
        try (SafeTensors src = SafeTensors.open(f32)) {
            SafeTensorsWriter w = SafeTensorsWriter.to(scaled);
            for (String n : src.names()) {
                float[] v = src.floats(n);
                boolean linear = n.endsWith(".weight") && src.info(n).rank() == 2 && n.contains(".layer.")
                        && !n.contains("relative_attention_bias");
                if (linear) {
                    for (int i = 0; i < v.length; i++) {
                        v[i] /= 2;
                    }
                    w.add(n.replace(".weight", ".scale_weight"), DType.F32, new long[] {}, new float[] {2f});
                }
                w.add(n, DType.F32, src.info(n).shape(), v);
            }
            w.add("scaled_fp8", DType.F8_E4M3, new long[] {0}, new float[0]);
            w.write();
        }
        int[] ids = {3, 9, 1202, 13, 1, 0, 0, 0};
        try (SafeTensors a = SafeTensors.open(f32); SafeTensors b = SafeTensors.open(scaled)) {
            float[] want = T5Encoder.load(T5Encoder.weights(a)).forward(ids, 1);
            float[] got = T5Encoder.load(T5Encoder.weights(b)).forward(ids, 1);
            assertArrayEquals(want, got, 1e-5f);
        }
    }

    @Test
    void viewsThatCannotReadRowsGetTheSameResult() throws Exception {
        try (SafeTensors ckpt = SafeTensors.open(tinyCheckpoint())) {
            Weights mapped = T5Encoder.weights(ckpt);
            assertTrue(mapped.rowsAreMapped());
            // a decorator (as a LoRA view would be) that only forwards the basic calls
            Weights plain = new BasicView(mapped);
            assertTrue(!plain.rowsAreMapped());
            int[] ids = {3, 9, 1202, 13, 3, 9, 1712, 1, 0, 0};
            assertArrayEquals(T5Encoder.load(mapped).forward(ids, 2), T5Encoder.load(plain).forward(ids, 2), 0f);
            int d = mapped.shape("shared.weight")[1];
            assertArrayEquals(java.util.Arrays.copyOfRange(mapped.get("shared.weight"), 1202 * d, 1203 * d),
                    plain.row("shared.weight", 1202), "the default row() slices the whole tensor");
            assertArrayEquals(plain.row("shared.weight", 1202), mapped.row("shared.weight", 1202), "the mapped row");
        }
    }

    @Test
    void badInputFailsWithAClearMessage() throws Exception {
        try (SafeTensors ckpt = SafeTensors.open(tinyCheckpoint())) {
            Weights w = T5Encoder.weights(ckpt);
            T5Encoder enc = T5Encoder.load(w);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> enc.forward(new int[] {40000}, 1));
            assertTrue(e.getMessage().contains("outside the T5 vocabulary"), e.getMessage());
            Weights clip = Weights.prefixed(ckpt, "text_encoders.clip_l.transformer.");
            e = assertThrows(IllegalArgumentException.class, () -> T5Encoder.load(clip));
            assertTrue(e.getMessage().contains("no token embedding"), e.getMessage());
        }
        Path noT5 = tmp.resolve("no-t5.safetensors");
        SafeTensorsWriter.to(noT5).add("x", DType.F32, new long[] {1}, new float[] {1}).write();
        try (SafeTensors st = SafeTensors.open(noT5)) {
            assertEquals(null, T5Encoder.prefixIn(st));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> T5Encoder.weights(st));
            assertTrue(e.getMessage().contains("no T5 encoder"), e.getMessage());
        }
    }
}
