package jdiffusion.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import jdiffusion.io.DType;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.SafeTensorsWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** fp8 widening against bit-assembled float32 values, narrowing, the fp8 weight format in the GEMM, file round trip. */
class Fp8Test {
    @TempDir
    Path tmp;

    /** The e4m3fn value of a code built as float32 bits (an oracle independent of Fp8's formula). */
    private static float e4m3Oracle(int code) {
        int sign = code >>> 7;
        int exp = (code >>> 3) & 0xF;
        int mant = code & 7;
        if (exp == 0xF && mant == 7) {
            return Float.NaN;
        }
        float mag;
        if (exp == 0) {
            mag = mant * Float.intBitsToFloat((127 - 9) << 23); // mant * 2^-9
        } else {
            mag = Float.intBitsToFloat(((exp - 7 + 127) << 23) | (mant << 20));
        }
        return sign == 1 ? -mag : mag;
    }

    @Test
    void e4m3TableMatchesBitAssembly() {
        for (int code = 0; code < 256; code++) {
            float want = e4m3Oracle(code);
            float got = Fp8.e4m3((byte) code);
            assertEquals(Float.floatToIntBits(want), Float.floatToIntBits(got), "code 0x" + Integer.toHexString(code));
        }
        assertEquals(448f, Fp8.e4m3((byte) 0x7E));
        assertEquals(-448f, Fp8.e4m3((byte) 0xFE));
        assertEquals(1f, Fp8.e4m3((byte) 0x38));
        assertEquals(0x1p-9f, Fp8.e4m3((byte) 0x01));
        assertEquals(0x1p-6f, Fp8.e4m3((byte) 0x08));
        assertTrue(Float.isNaN(Fp8.e4m3((byte) 0x7F)) && Float.isNaN(Fp8.e4m3((byte) 0xFF)));
    }

    @Test
    void e5m2IsTheTopByteOfAHalf() {
        assertEquals(1f, Fp8.e5m2((byte) 0x3C));
        assertEquals(57344f, Fp8.e5m2((byte) 0x7B));
        assertEquals(Float.POSITIVE_INFINITY, Fp8.e5m2((byte) 0x7C));
        assertEquals(0x1p-16f, Fp8.e5m2((byte) 0x01));
        for (int code = 0; code < 256; code++) {
            float v = Fp8.e5m2((byte) code);
            if (!Float.isNaN(v)) {
                assertEquals((byte) code, Fp8.toE5m2(v), "round trip of e5m2 code " + code);
            }
        }
    }

    @Test
    void e4m3NarrowingRoundsToNearestEven() {
        for (int code = 0; code < 256; code++) {
            float v = Fp8.e4m3((byte) code);
            if (Float.isNaN(v)) {
                assertTrue(Float.isNaN(Fp8.e4m3(Fp8.toE4m3(v))));
            } else {
                assertEquals((byte) code, Fp8.toE4m3(v), "round trip of code " + code);
            }
        }
        assertEquals((byte) 0x38, Fp8.toE4m3(1.0625f), "tie between 1 (0x38) and 1.125 goes to the even code");
        assertEquals((byte) 0x3A, Fp8.toE4m3(1.1875f), "tie between 1.125 (0x39) and 1.25 goes to the even code");
        assertEquals((byte) 0x39, Fp8.toE4m3(1.07f));
        assertEquals((byte) 0x7E, Fp8.toE4m3(460f));
        assertEquals((byte) 0x7F, Fp8.toE4m3(470f), "torch rounds [464, 480) up onto the NaN pattern");
        assertEquals((byte) 0x7F, Fp8.toE4m3(480f));
        assertEquals((byte) 0xFF, Fp8.toE4m3(-1e6f));
        assertEquals((byte) 0x00, Fp8.toE4m3(0x1p-11f), "below half the smallest subnormal: zero");
        assertEquals((byte) 0x01, Fp8.toE4m3(0x1.8p-10f));
        // a brute-force nearest search over all finite codes agrees everywhere on a fine grid
        for (float x = -500f; x <= 500f; x += 0.0371f) {
            if (Math.abs(x) >= 464f) {
                continue;
            }
            int best = -1;
            double bestD = Double.POSITIVE_INFINITY;
            for (int code = 0; code < 256; code++) {
                float v = e4m3Oracle(code);
                if (Float.isNaN(v) || code == 0x80) {
                    continue;
                }
                double d = Math.abs((double) v - x);
                if (d < bestD || d == bestD && (code & 1) == 0) {
                    bestD = d;
                    best = code;
                }
            }
            assertEquals(e4m3Oracle(best), Fp8.e4m3(Fp8.toE4m3(x)), "nearest e4m3 of " + x);
        }
    }

    @Test
    void linearWithFp8WeightsComputesWhatFloat32WeightsOfTheSameValuesDo() {
        int out = 37;
        int in = 53;
        float[] w = new float[out * in];
        float[] bias = new float[out];
        for (int i = 0; i < w.length; i++) {
            w[i] = Fp8.e4m3(Fp8.toE4m3((float) Math.sin(i * 0.7) * 3));
        }
        for (int i = 0; i < out; i++) {
            bias[i] = i * 0.01f;
        }
        float[] x = new float[5 * in];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) Math.cos(i * 0.3);
        }
        Linear f8 = Linear.of(w, bias, out, in, WeightFormat.F8_E4M3);
        Linear f32 = Linear.of(w, bias, out, in, WeightFormat.F32);
        assertEquals(f32.weightBytes(), 4 * f8.weightBytes(), "fp8 storage quarters the packed bytes");
        assertArrayEquals(f32.forward(x, 5), f8.forward(x, 5), 0f);
        // and the scalar oracle
        float[] y = f8.forward(x, 5);
        for (int r = 0; r < 5; r++) {
            for (int o = 0; o < out; o++) {
                double s = bias[o];
                for (int k = 0; k < in; k++) {
                    s += (double) x[r * in + k] * w[o * in + k];
                }
                assertEquals(s, y[r * out + o], 1e-4, "y[" + r + "][" + o + "]");
            }
        }
    }

    @Test
    void safetensorsStoresAndReadsFp8() throws Exception {
        float[] values = {0f, 1f, -1.5f, 448f, 0x1p-9f, 3.3f, -0.07f, 300f};
        Path file = tmp.resolve("fp8.safetensors");
        SafeTensorsWriter.to(file).add("a", DType.F8_E4M3, new long[] {2, 4}, values)
                .add("b", DType.F8_E5M2, new long[] {8}, values).write();
        try (SafeTensors st = SafeTensors.open(file)) {
            assertEquals(DType.F8_E4M3, st.info("a").dtype());
            assertEquals(8, st.info("a").end() - st.info("a").begin(), "one byte per value");
            float[] a = st.floats("a");
            float[] b = st.floats("b");
            for (int i = 0; i < values.length; i++) {
                assertEquals(Fp8.e4m3(Fp8.toE4m3(values[i])), a[i], "e4m3 " + values[i]);
                assertEquals(Fp8.e5m2(Fp8.toE5m2(values[i])), b[i], "e5m2 " + values[i]);
            }
        }
    }
}
