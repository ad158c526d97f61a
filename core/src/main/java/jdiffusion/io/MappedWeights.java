package jdiffusion.io;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * A {@link Weights} view of one file under canonical names: each canonical name maps to the name of a tensor in
 * the file (a prefix removed, a layout renamed). Shapes and dtypes come from the header; values are read only
 * when asked for.
 */
public final class MappedWeights implements Weights {
    private final SafeTensors file;
    private final Map<String, String> fileNames;
    private final Map<String, int[]> shapes;

    /** canonicalToFile: canonical name to tensor name in file, in the order the names should be listed. */
    public MappedWeights(SafeTensors file, Map<String, String> canonicalToFile) {
        this(file, canonicalToFile, Map.of());
    }

    /**
     * As above, with some tensors presented in another shape of the same size and row-major order (a diffusers VAE's
     * [C, C] attention weights are the LDM layout's [C, C, 1, 1] 1x1 convolutions).
     */
    public MappedWeights(SafeTensors file, Map<String, String> canonicalToFile, Map<String, int[]> shapeOverrides) {
        this.file = file;
        this.fileNames = Collections.unmodifiableMap(new LinkedHashMap<>(canonicalToFile));
        this.shapes = Map.copyOf(shapeOverrides);
    }

    /** The tensors whose names start with prefix, named without it. */
    public static MappedWeights prefixed(SafeTensors file, String prefix) {
        Map<String, String> m = new LinkedHashMap<>();
        for (String n : file.names()) {
            if (n.startsWith(prefix)) {
                m.put(n.substring(prefix.length()), n);
            }
        }
        return new MappedWeights(file, m);
    }

    public SafeTensors file() {
        return file;
    }

    /** Canonical name to the tensor's name in the file. */
    public Map<String, String> fileNames() {
        return fileNames;
    }

    /** The header entry (dtype, shape as stored, byte range) behind a canonical name. */
    public TensorInfo info(String name) {
        return file.info(fileName(name));
    }

    @Override
    public Set<String> names() {
        return fileNames.keySet();
    }

    @Override
    public boolean has(String name) {
        return fileNames.containsKey(name);
    }

    @Override
    public int[] shape(String name) {
        int[] override = shapes.get(name);
        return override != null ? override.clone() : info(name).dims();
    }

    @Override
    public float[] get(String name) {
        return file.floats(fileName(name));
    }

    @Override
    public DType dtype(String name) {
        return info(name).dtype();
    }

    @Override
    public float[] row(String name, int index) {
        if (shapes.containsKey(name)) {
            return Weights.super.row(name, index);
        }
        return Weights.rowOf(file, fileName(name), index);
    }

    @Override
    public java.lang.foreign.MemorySegment mapped(String name) {
        return file.segment(fileName(name));
    }

    @Override
    public boolean rowsAreMapped() {
        return true;
    }

    private String fileName(String name) {
        String f = fileNames.get(name);
        if (f == null) {
            throw new MissingTensorException(file.path() + ": no tensor '" + name + "'");
        }
        return f;
    }
}
