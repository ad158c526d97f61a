package jdiffusion.io;

import java.util.LinkedHashSet;
import java.util.Set;

/**
 * One model component's tensors by canonical name, as float32. Model code reads its weights only through this
 * interface, so layouts (original LDM/SGM, diffusers, OpenCLIP) and patches (LoRA) are the loader's business.
 *
 * <p>Canonical names: UNet and VAE use the original LDM/SGM names without the file prefix
 * ({@code input_blocks.1.0.in_layers.0.weight}, {@code decoder.up.3.block.0.conv1.weight}); text encoders use the
 * HuggingFace CLIP names ({@code text_model.encoder.layers.0.self_attn.q_proj.weight}, {@code text_projection.weight}
 * as an [proj, hidden] Linear weight).
 */
public interface Weights {
    /** Every canonical name. */
    Set<String> names();

    boolean has(String name);

    int[] shape(String name);

    /** The values widened to float32, row-major; a fresh array the caller may keep. */
    float[] get(String name);

    /**
     * The element type the values are stored in (fp16/bf16 weights are kept in 16 bits by the models, since widening
     * them back loses nothing). F32 unless the implementation knows better: values that were computed (a LoRA patch)
     * are float32.
     */
    default DType dtype(String name) {
        return DType.F32;
    }

    /**
     * Row index of a tensor viewed as [shape[0]][rest], widened to float32 (an embedding lookup). Views over a file
     * read just that row from the mapping; the default reads the whole tensor.
     */
    default float[] row(String name, int index) {
        int[] s = shape(name);
        int width = 1;
        for (int i = 1; i < s.length; i++) {
            width *= s[i];
        }
        if (s.length == 0 || index < 0 || index >= s[0]) {
            throw new IllegalArgumentException("row " + index + " outside tensor '" + name + "' " + java.util.Arrays.toString(s));
        }
        return java.util.Arrays.copyOfRange(get(name), index * width, (index + 1) * width);
    }

    /**
     * count values of a tensor from flat index start, widened to float32. Views over a file read just those from
     * the mapping; the default reads the whole tensor.
     */
    default float[] slice(String name, long start, int count) {
        float[] all = get(name);
        if (start < 0 || count < 0 || start + count > all.length) {
            throw new IllegalArgumentException("values " + start + ".." + (start + count) + " outside tensor '" + name
                    + "' of " + all.length);
        }
        return java.util.Arrays.copyOfRange(all, (int) start, (int) start + count);
    }

    /**
     * The tensor's bytes as stored (little-endian, {@link #dtype}) where they lie in a file this view maps, with no
     * copy, for layers that read their weights in place ({@code Linear.mapped}); null when the values exist only as
     * computed floats (a LoRA patch, an in-memory view). Valid while the file stays open.
     */
    default java.lang.foreign.MemorySegment mapped(String name) {
        return null;
    }

    /** Whether {@link #row} reads just the row from a mapped file (else it reads the whole tensor each time). */
    default boolean rowsAreMapped() {
        return false;
    }

    /** The tensors of one file whose names start with prefix, with the prefix removed. */
    static Weights prefixed(SafeTensors file, String prefix) {
        Set<String> names = new LinkedHashSet<>();
        for (String n : file.names()) {
            if (n.startsWith(prefix)) {
                names.add(n.substring(prefix.length()));
            }
        }
        return new Weights() {
            @Override
            public Set<String> names() {
                return names;
            }

            @Override
            public boolean has(String name) {
                return names.contains(name);
            }

            @Override
            public int[] shape(String name) {
                return file.info(full(name)).dims();
            }

            @Override
            public float[] get(String name) {
                return file.floats(full(name));
            }

            @Override
            public DType dtype(String name) {
                return file.info(full(name)).dtype();
            }

            @Override
            public float[] row(String name, int index) {
                return rowOf(file, full(name), index);
            }

            @Override
            public float[] slice(String name, long start, int count) {
                return file.floats(full(name), start, count);
            }

            @Override
            public boolean rowsAreMapped() {
                return true;
            }

            @Override
            public java.lang.foreign.MemorySegment mapped(String name) {
                return file.segment(full(name));
            }

            private String full(String name) {
                if (!names.contains(name)) {
                    throw new MissingTensorException(file.path() + ": no tensor '" + prefix + name + "'");
                }
                return prefix + name;
            }
        };
    }

    /** Row index of a file's tensor viewed as [shape[0]][rest], read from the mapping. */
    static float[] rowOf(SafeTensors file, String fileName, int index) {
        int[] s = file.info(fileName).dims();
        if (s.length == 0 || index < 0 || index >= s[0]) {
            throw new IllegalArgumentException("row " + index + " outside tensor '" + fileName + "' " + java.util.Arrays.toString(s));
        }
        int width = 1;
        for (int i = 1; i < s.length; i++) {
            width *= s[i];
        }
        return file.floats(fileName, (long) index * width, width);
    }

    /** A tensor a model needs is not in the checkpoint. */
    final class MissingTensorException extends IllegalStateException {
        public MissingTensorException(String message) {
            super(message);
        }
    }
}
