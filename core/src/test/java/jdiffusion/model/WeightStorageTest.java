package jdiffusion.model;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Set;
import jdiffusion.Golden;
import jdiffusion.io.BasicView;
import jdiffusion.io.DType;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import jdiffusion.tensor.Linear;
import jdiffusion.tensor.WeightFormat;
import org.junit.jupiter.api.Test;

/** Layers keep fp16/bf16 weights in 16 bits (half the bytes of float32), and fp32 or computed weights in 32. */
class WeightStorageTest {
    @Test
    void fp16FileLayersUseHalfTheBytes() throws Exception {
        try (SafeTensors file = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            Weights w = Weights.prefixed(file, "model.diffusion_model.");
            String name = w.names().stream().filter(n -> n.endsWith("attn1.to_q.weight")).findFirst().orElseThrow();
            String prefix = name.substring(0, name.length() - ".weight".length());
            assertEquals(DType.F16, w.dtype(name));
            assertEquals(WeightFormat.F16, UNetTensors.storage(w, name));
            int in = w.shape(name)[1];
            Linear half = new UNetTensors(w).linear(prefix, in);
            Linear full = new UNetTensors(asFloat32(w)).linear(prefix, in);
            assertEquals(full.weightBytes(), 2 * half.weightBytes(), "16-bit storage halves the packed bytes");
            float[] x = new float[3 * in];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) Math.sin(i);
            }
            // fp16 values widen exactly, so both layers compute the same numbers
            org.junit.jupiter.api.Assertions.assertArrayEquals(full.forward(x, 3), half.forward(x, 3), 1e-6f);
        }
    }

    @Test
    void unknownStorageIsFloat32() {
        Weights plain = new Weights() {
            @Override
            public Set<String> names() {
                return Set.of("a");
            }

            @Override
            public boolean has(String name) {
                return name.equals("a");
            }

            @Override
            public int[] shape(String name) {
                return new int[] {1};
            }

            @Override
            public float[] get(String name) {
                return new float[] {1};
            }
        };
        assertEquals(WeightFormat.F32, UNetTensors.storage(plain, "a"));
    }

    /** The same tensors, presented as float32 (the default of {@link Weights#dtype}). */
    private static Weights asFloat32(Weights w) {
        return new BasicView(w);
    }
}
