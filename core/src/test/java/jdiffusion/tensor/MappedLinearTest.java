package jdiffusion.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@link Linear#mapped}: weights read in place from little-endian bytes, packed block by block at each call, give
 * exactly the floats of {@link Linear#of} over the same values (same k blocks, panels and micro-kernels), for every
 * stored width, for shapes of one block of columns and of several (the last one narrower than a panel), with
 * strided input and output and accumulation; and both agree with float64 math.
 */
class MappedLinearTest {
    static Stream<Arguments> cases() {
        // in x out x rows; in = 8192 makes blocks of 5 panels, so 600 outputs are 3 blocks, the last partial
        int[][] shapes = {{40, 100, 5}, {320, 1280, 37}, {8192, 600, 9}, {1536, 7, 3}, {3, 50, 1}};
        return Stream.of(WeightFormat.values())
                .flatMap(f -> Stream.of(shapes).map(s -> Arguments.of(f, s[0], s[1], s[2])));
    }

    @ParameterizedTest(name = "{0} in {1} out {2} rows {3}")
    @MethodSource("cases")
    void sameFloatsAsThePackedLayer(WeightFormat format, int in, int out, int rows) {
        Random r = new Random(in * 31L + out * 7L + format.ordinal());
        float[] w = new float[in * out];
        for (int i = 0; i < w.length; i++) {
            w[i] = stored(format, (float) (r.nextGaussian() * 0.2));
        }
        float[] bias = new float[out];
        for (int i = 0; i < out; i++) {
            bias[i] = (float) r.nextGaussian();
        }
        MemorySegment bytes = encode(w, format);
        Linear packed = Linear.of(w, bias, out, in, format);
        Linear mapped = Linear.mapped(bytes, format, bias, out, in);
        assertTrue(mapped.isMapped());
        assertEquals(bytes.byteSize(), mapped.weightBytes());

        int ldx = in + 3;
        int ldy = out + 5;
        float[] x = new float[2 + rows * ldx];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextGaussian();
        }
        assertArrayEquals(packed.forward(slice(x, 2, ldx, in, rows), rows),
                mapped.forward(slice(x, 2, ldx, in, rows), rows));
        float[] base = new float[1 + rows * ldy];
        for (int i = 0; i < base.length; i++) {
            base[i] = (float) r.nextGaussian();
        }
        for (boolean accumulate : new boolean[] {false, true}) {
            float[] a = base.clone();
            float[] b = base.clone();
            packed.forward(x, 2, ldx, rows, a, 1, ldy, accumulate);
            mapped.forward(x, 2, ldx, rows, b, 1, ldy, accumulate);
            assertArrayEquals(a, b, "accumulate " + accumulate);
        }

        // against float64 math on the stored values
        float[] y = mapped.forward(slice(x, 2, ldx, in, rows), rows);
        for (int i = 0; i < rows; i++) {
            for (int o = i % 3; o < out; o += 3) {
                double sum = bias[o];
                double abs = Math.abs(bias[o]);
                for (int k = 0; k < in; k++) {
                    double p = (double) x[2 + i * ldx + k] * w[o * in + k];
                    sum += p;
                    abs += Math.abs(p);
                }
                assertEquals(sum, y[i * out + o], 1e-6 * abs + 1e-30, "row " + i + " out " + o);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("formats")
    void aSegmentOfTheWrongSizeIsRefused(WeightFormat format) {
        MemorySegment bytes = Arena.ofAuto().allocate(10L * 4 * format.bytes() - 1);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Linear.mapped(bytes, format, null, 10, 4));
        assertTrue(e.getMessage().contains("10x4"), e.getMessage());
    }

    static Stream<WeightFormat> formats() {
        return Stream.of(WeightFormat.values());
    }

    private static float[] slice(float[] x, int off, int ld, int width, int rows) {
        float[] out = new float[rows * width];
        for (int i = 0; i < rows; i++) {
            System.arraycopy(x, off + i * ld, out, i * width, width);
        }
        return out;
    }

    /** The value as the format stores it. */
    private static float stored(WeightFormat f, float v) {
        float[] one = new float[1];
        switch (f) {
            case F32 -> one[0] = v;
            case F16, BF16 -> f.decode(new short[] {f.encode(v)}, 0, one, 0, 1);
            case F8_E4M3, F8_E5M2 -> f.decode(new byte[] {f.encode8(v)}, 0, one, 0, 1);
        }
        return one[0];
    }

    private static MemorySegment encode(float[] w, WeightFormat f) {
        // one byte of offset: tensors in a safetensors file need not be aligned
        MemorySegment all = Arena.ofAuto().allocate((long) w.length * f.bytes() + 1);
        MemorySegment s = all.asSlice(1);
        for (int i = 0; i < w.length; i++) {
            long o = (long) i * f.bytes();
            switch (f) {
                case F32 -> s.set(ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), o, w[i]);
                case F16, BF16 -> s.set(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), o,
                        f.encode(w[i]));
                case F8_E4M3, F8_E5M2 -> s.set(ValueLayout.JAVA_BYTE, o, f.encode8(w[i]));
            }
        }
        return s;
    }
}
