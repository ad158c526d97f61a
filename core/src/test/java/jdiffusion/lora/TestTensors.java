package jdiffusion.lora;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import jdiffusion.io.Weights;

/** Small tensors for LoRA tests: a minimal F32 safetensors writer, random tensors, an in-memory Weights. */
final class TestTensors {
    private TestTensors() {
    }

    record T(int[] shape, float[] data) {
    }

    /** Builds a file's tensors in insertion order. */
    static final class Builder {
        private final Map<String, T> tensors = new LinkedHashMap<>();
        private final Random random;

        Builder(long seed) {
            random = new Random(seed);
        }

        /** A random tensor (values in [-0.5, 0.5)); returns its values. */
        float[] random(String name, int... shape) {
            int n = 1;
            for (int d : shape) {
                n *= d;
            }
            float[] v = new float[n];
            for (int i = 0; i < n; i++) {
                v[i] = random.nextFloat() - 0.5f;
            }
            tensors.put(name, new T(shape, v));
            return v;
        }

        void scalar(String name, float value) {
            tensors.put(name, new T(new int[0], new float[] {value}));
        }

        Path write(Path file) throws IOException {
            TestTensors.write(file, tensors);
            return file;
        }
    }

    static void write(Path file, Map<String, T> tensors) throws IOException {
        StringBuilder header = new StringBuilder("{");
        long offset = 0;
        for (Map.Entry<String, T> e : tensors.entrySet()) {
            if (header.length() > 1) {
                header.append(',');
            }
            long bytes = 4L * e.getValue().data().length;
            header.append('"').append(e.getKey()).append("\":{\"dtype\":\"F32\",\"shape\":")
                    .append(java.util.Arrays.toString(e.getValue().shape()).replace(" ", ""))
                    .append(",\"data_offsets\":[").append(offset).append(',').append(offset + bytes).append("]}");
            offset += bytes;
        }
        header.append('}');
        while (header.length() % 8 != 0) {
            header.append(' ');
        }
        byte[] h = header.toString().getBytes(StandardCharsets.UTF_8);
        ByteBuffer buf = ByteBuffer.allocate(8 + h.length + (int) offset).order(ByteOrder.LITTLE_ENDIAN);
        buf.putLong(h.length).put(h);
        for (T t : tensors.values()) {
            for (float f : t.data()) {
                buf.putFloat(f);
            }
        }
        Files.write(file, buf.array());
    }

    /** Weights held in memory (a synthetic model component). */
    static Weights weights(Map<String, T> tensors) {
        return new Weights() {
            @Override
            public Set<String> names() {
                return tensors.keySet();
            }

            @Override
            public boolean has(String name) {
                return tensors.containsKey(name);
            }

            @Override
            public int[] shape(String name) {
                return tensors.get(name).shape().clone();
            }

            @Override
            public float[] get(String name) {
                return tensors.get(name).data().clone();
            }
        };
    }

    /** a [m,k] @ b [k,n] in double. */
    static double[] matmul(float[] a, float[] b, int m, int k, int n) {
        double[] out = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double acc = 0;
                for (int p = 0; p < k; p++) {
                    acc += (double) a[i * k + p] * b[p * n + j];
                }
                out[i * n + j] = acc;
            }
        }
        return out;
    }

    /** Max |got - (base + factor * delta)| over all elements, relative to 1e-6 abs + 1e-6 rel (<= 1 passes). */
    static double misfit(float[] got, float[] base, double factor, double[] delta) {
        double worst = 0;
        for (int i = 0; i < got.length; i++) {
            double want = base[i] + factor * delta[i];
            worst = Math.max(worst, Math.abs(got[i] - want) / (1e-6 + 1e-6 * Math.abs(want)));
        }
        return worst;
    }
}
