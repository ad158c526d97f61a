package jdiffusion.model.upscale;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import jdiffusion.Golden;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Files that are not upscale models, or whose tensors do not fit, fail at load with one line naming the problem. */
class UpscaleModelBadInputTest {

    /** A golden model's tensors, renamed or reshaped by the test. */
    private static final class Edited implements Weights {
        final Map<String, float[]> values = new LinkedHashMap<>();
        final Map<String, int[]> shapes = new LinkedHashMap<>();

        Edited(Path file) throws Exception {
            try (SafeTensors st = SafeTensors.open(file)) {
                for (String n : st.names()) {
                    values.put(n, st.floats(n));
                    shapes.put(n, st.info(n).dims());
                }
            }
        }

        @Override
        public Set<String> names() {
            return values.keySet();
        }

        @Override
        public boolean has(String name) {
            return values.containsKey(name);
        }

        @Override
        public int[] shape(String name) {
            return shapes.get(name).clone();
        }

        @Override
        public float[] get(String name) {
            return values.get(name).clone();
        }
    }

    private static Path model(String name) {
        return Golden.model(name);
    }

    @Test
    void aCheckpointIsNotAnUpscaler() {
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> UpscaleModel.open(model("tiny-sd1-fp16.safetensors")));
        assertTrue(e.getMessage().contains("not a known upscale model"), e.getMessage());
        assertEquals(1, e.getMessage().lines().count());
    }

    @Test
    void anExtraTensorIsNamed() throws Exception {
        Edited w = new Edited(model("tiny-esrgan-realesrgan-x4-fp16.safetensors"));
        w.values.put("body.0.rdb1.conv1x1.weight", new float[4]);
        w.shapes.put("body.0.rdb1.conv1x1.weight", new int[] {4});
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> UpscaleModel.load(w));
        assertTrue(e.getMessage().contains("'body.0.rdb1.conv1x1.weight'"), e.getMessage());
    }

    @Test
    void aWrongShapeIsNamed() throws Exception {
        Edited w = new Edited(model("tiny-esrgan-old-x4-fp16.safetensors"));
        int[] s = w.shapes.get("model.1.sub.0.RDB1.conv3.0.weight");
        s[1] += 1;
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> UpscaleModel.load(w));
        assertTrue(e.getMessage().contains("model.1.sub.0.RDB1.conv3.0.weight"), e.getMessage());
    }

    @Test
    void aBrokenOldLayoutIsRefused() throws Exception {
        Edited w = new Edited(model("tiny-esrgan-old-x4-fp16.safetensors"));
        w.values.put("model.11.weight", new float[1]);
        w.shapes.put("model.11.weight", new int[] {1});
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> UpscaleModel.load(w));
        assertTrue(e.getMessage().contains("model.11"), e.getMessage());
    }

    @Test
    void aTruncatedFileIsRefused(@TempDir Path tmp) throws Exception {
        Path f = tmp.resolve("cut.safetensors");
        byte[] all = Files.readAllBytes(model("tiny-esrgan-compact-x4-fp16.safetensors"));
        Files.write(f, java.util.Arrays.copyOf(all, all.length / 2));
        assertThrows(ModelFormatException.class, () -> UpscaleModel.open(f));
    }

    @Test
    void wrappedAndPrefixedStateDictsLoadTheSame() throws Exception {
        Edited w = new Edited(model("tiny-esrgan-compact-x4-fp16.safetensors"));
        Edited wrapped = new Edited(model("tiny-esrgan-compact-x4-fp16.safetensors"));
        wrapped.values.clear();
        wrapped.shapes.clear();
        for (String n : w.names()) {
            wrapped.values.put("params_ema.module." + n, w.values.get(n));
            wrapped.shapes.put("params_ema.module." + n, w.shapes.get(n));
            wrapped.values.put("params." + n, new float[1]);
            wrapped.shapes.put("params." + n, new int[] {1});
        }
        float[] img = new float[3 * 5 * 7];
        for (int i = 0; i < img.length; i++) {
            img[i] = (i * 37 % 255) / 255f;
        }
        assertArrayEquals(UpscaleModel.load(w).upscale(img, 5, 7, true),
                UpscaleModel.load(wrapped).upscale(img, 5, 7, true));
    }

    @Test
    void tilesAndPaddingFollowComfyAndSpandrel() {
        assertEquals(java.util.List.of(0, 24), UpscaleModel.positions(56, 32, 8)); // range(0, 48, 24)
        assertEquals(java.util.List.of(0), UpscaleModel.positions(20, 32, 8));
        assertArrayEquals(new float[] {0.25f, 0.5f, 0.75f, 1f, 1f, 0.75f, 0.5f, 0.25f},
                UpscaleModel.featherMask(8, 4));
        // reflect (no edge repeat) then replicate: 3 columns padded to 7 -> 0 1 2 1 0 0 0
        float[] row = {0, 1, 2};
        assertArrayEquals(new float[] {0, 1, 2, 1, 0, 0, 0}, UpscaleModel.padRightBottom(row, 1, 3, 1, 1, 7));
        assertEquals(new UpscaleModel.SizeRequirements(4, 4).pad(14), 16);
        assertEquals(new UpscaleModel.SizeRequirements(2, 1).pad(1), 2);
    }

    /** Real-ESRGAN-layout RRDBNet tensors: in channels of conv_first, up convs, nb blocks, nf features, gc growth. */
    private static java.util.List<jdiffusion.io.CheckpointKeys.TensorSpec> rrdb(int in, int ups, int nb, int nf,
            int gc) {
        java.util.List<jdiffusion.io.CheckpointKeys.TensorSpec> t = new java.util.ArrayList<>();
        java.util.function.BiConsumer<String, int[]> conv = (name, io) -> {
            t.add(new jdiffusion.io.CheckpointKeys.TensorSpec(name + ".weight", new long[] {io[1], io[0], 3, 3},
                    jdiffusion.io.CheckpointKeys.Init.NORMAL));
            t.add(new jdiffusion.io.CheckpointKeys.TensorSpec(name + ".bias", new long[] {io[1]},
                    jdiffusion.io.CheckpointKeys.Init.NORMAL));
        };
        conv.accept("conv_first", new int[] {in, nf});
        for (int b = 0; b < nb; b++) {
            for (int k = 1; k <= 3; k++) {
                for (int j = 1; j <= 5; j++) {
                    conv.accept("body." + b + ".rdb" + k + ".conv" + j, new int[] {nf + (j - 1) * gc, j < 5 ? gc : nf});
                }
            }
        }
        conv.accept("conv_body", new int[] {nf, nf});
        for (int u = 1; u <= ups; u++) {
            conv.accept("conv_up" + u, new int[] {nf, nf});
        }
        conv.accept("conv_hr", new int[] {nf, nf});
        conv.accept("conv_last", new int[] {nf, 3});
        return t;
    }

    @Test
    void scaleAndUnshuffleComeFromTheWeights() throws Exception {
        // x1 (unshuffle 4, two up convs), x2 plus (unshuffle 2), x8 (three up convs)
        int[][] cases = {{48, 2, 1}, {12, 2, 2}, {3, 3, 8}, {3, 1, 2}};
        for (int[] c : cases) {
            UpscaleModel m = UpscaleModel.load(jdiffusion.bench.RandomWeights.of(rrdb(c[0], c[1], 1, 8, 4), "", 1));
            assertEquals(c[2], m.scale(), java.util.Arrays.toString(c));
            assertEquals(3, m.inChannels());
            assertEquals(c[0] > 3, m.tags().contains("unshuffle"));
            float[] img = new float[3 * 7 * 9];
            float[] out = m.upscale(img, 7, 9, false);
            assertEquals(3 * 7 * c[2] * 9 * c[2], out.length);
        }
        // a growth other than spandrel's hard-coded 32 is read from the shapes too
        assertEquals(java.util.List.of("8nf", "1nb"), UpscaleModel.load(jdiffusion.bench.RandomWeights.of(
                rrdb(3, 2, 1, 8, 4), "", 1)).tags());
    }
}
